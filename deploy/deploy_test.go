// Package deploy holds Signpost's deployment files. Its tests check what can
// be checked without a container engine or a cluster: the image's build
// step, that every file parses, that the configuration files mean what the
// deployment relies on, and that the pieces refer to each other correctly
// (files that exist, selectors that select, ports that are served).
package deploy

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/signpost-health/signpost/config"
	"github.com/signpost-health/signpost/gateway/auth"
	"github.com/signpost-health/signpost/gateway/httpapi"
	"github.com/signpost-health/signpost/mappings"
)

func TestImageBuildStepMakesAStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	out := filepath.Join(t.TempDir(), "signpost")
	if b, err := exec.Command("sh", "build.sh", out, "test-1").CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary is dynamically linked; distroless/static needs a static one")
		}
	}
	v, err := exec.Command(out, "version").Output()
	if err != nil || !strings.Contains(string(v), "test-1") {
		t.Errorf("version = %q, %v", v, err)
	}
	// The Dockerfile must build with that script and run as non-root.
	df, _ := os.ReadFile("Dockerfile")
	for _, want := range []string{"deploy/build.sh", "USER nonroot", "distroless/static"} {
		if !strings.Contains(string(df), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

// redisDirectives reads redis.conf syntax: one directive a line, comments
// and blank lines skipped.
func redisDirectives(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	got := map[string]string{}
	s := bufio.NewScanner(r)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		got[k] = strings.TrimSpace(v)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func checkRedisDurability(t *testing.T, where string, got map[string]string) {
	t.Helper()
	for k, want := range map[string]string{"appendonly": "yes", "appendfsync": "always", "maxmemory-policy": "noeviction"} {
		if got[k] != want {
			t.Errorf("%s: %s = %q, want %q", where, k, got[k], want)
		}
	}
}

func readRedisConf(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("redis.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return redisDirectives(t, f)
}

func TestRedisSettingsKeepEverything(t *testing.T) {
	t.Parallel()
	checkRedisDurability(t, "redis.conf", readRedisConf(t))
}

// TestSignpostConfigIsValid checks the image's built-in configuration.
func TestSignpostConfigIsValid(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("signpost.yaml", func(string) string { return "" }, mappings.IsCategory)
	if err != nil {
		t.Fatal(err)
	}
	// It runs without authentication, so it must stay on loopback.
	if cfg.Auth.Mode != config.AuthSMART && !cfg.IsLoopbackListen() {
		t.Errorf("listen %s without authentication", cfg.Listen)
	}
}

// loadNetworkedConfig loads a configuration meant for a Signpost other
// pods or containers reach, and checks what such a one needs beyond
// config.Load: authentication on, a listener on the network, and clients
// that the SMART server accepts (scopes and keys, which Load leaves to it).
func loadNetworkedConfig(t *testing.T, file string) config.Config {
	t.Helper()
	cfg, err := config.Load(file, func(string) string { return "" }, mappings.IsCategory)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Auth.Mode != config.AuthSMART {
		t.Errorf("%s: auth.mode = %s, want smart", file, cfg.Auth.Mode)
	}
	if cfg.IsLoopbackListen() {
		t.Errorf("%s: listen %s is loopback; other containers could not reach it", file, cfg.Listen)
	}
	checkAuthAccepts(t, file, cfg)
	return cfg
}

// checkAuthAccepts builds the SMART server the way serve does, since a
// client without scopes or keys passes config.Load but stops serve.
func checkAuthAccepts(t *testing.T, file string, cfg config.Config) {
	t.Helper()
	var clients []auth.Client
	for _, c := range cfg.Clients {
		clients = append(clients, auth.Client{ID: c.ID, Kind: auth.KindGP, Organization: auth.Identifier(c.Organization),
			JWKS: c.Auth.JWKS, JWKSURL: c.Auth.JWKSURL, Scopes: c.Auth.Scopes})
	}
	for _, p := range cfg.Providers {
		clients = append(clients, auth.Client{ID: p.ID, Kind: auth.KindProvider, Organization: auth.Identifier(p.Organization),
			JWKS: p.Auth.JWKS, JWKSURL: p.Auth.JWKSURL, Scopes: p.Auth.Scopes})
	}
	_, err := auth.New(auth.Options{Clients: clients, TokenURL: httpapi.TokenURL(cfg.PublicURL),
		Replay: noReplay{}, Tokens: noTokens{}, HTTPClient: http.DefaultClient})
	if err != nil {
		t.Errorf("%s: serve would refuse its clients: %v", file, err)
	}
}

type noReplay struct{}

func (noReplay) Remember(context.Context, string, string, time.Time) (bool, error) { return true, nil }

type noTokens struct{}

func (noTokens) Save(context.Context, string, auth.Grant, time.Duration) error { return nil }
func (noTokens) Load(context.Context, string) (*auth.Grant, error)             { return nil, nil }

// hostPort splits a URL's or address's host and port.
func hostPort(t *testing.T, raw string) (string, string) {
	t.Helper()
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Hostname(), u.Port()
	}
	h, p, err := net.SplitHostPort(raw)
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	return h, p
}

// flagValue returns the value after name in args ("-config FILE"), or of
// "name=value".
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// ---- compose ----

type composeFile struct {
	Name     string
	Services map[string]composeService
	Volumes  map[string]any
}

type composeService struct {
	Image string
	Build *struct {
		Context    string
		Dockerfile string
	}
	Command     []string
	Volumes     []string
	Environment map[string]string
	Ports       []string
	NetworkMode string `yaml:"network_mode"`
	DependsOn   map[string]struct {
		Condition string
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string
	}
	ReadOnly  bool     `yaml:"read_only"`
	CapDrop   []string `yaml:"cap_drop"`
	CPUShares int      `yaml:"cpu_shares"`
}

// mount finds the volume whose container side is target and returns its
// source ("./file" for a bind mount, a name for a named volume).
func (s composeService) mount(target string) (string, bool) {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == target {
			return parts[0], true
		}
	}
	return "", false
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestComposeFile(t *testing.T) {
	t.Parallel()
	c := readCompose(t)
	for _, name := range []string{"redis", "signpost-api", "signpost-worker", "otel-collector", "jaeger"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("compose has no service %s", name)
		}
	}
	for name, s := range c.Services {
		if s.NetworkMode != "" {
			t.Errorf("%s: network_mode %s; the stack runs on its compose network", name, s.NetworkMode)
		}
		// Every file mounted from the repository must exist.
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			} else if c.Volumes[src] == nil {
				t.Errorf("%s uses volume %q, which compose does not declare", name, src)
			}
		}
		for dep := range s.DependsOn {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("%s depends on %s, which is not a service", name, dep)
			}
		}
	}

	// On a busy host the workers yield CPU to the API and Redis, whose
	// answers a GP system waits on (unset is Docker's weight, 1024).
	weight := func(s composeService) int { return cmp.Or(s.CPUShares, 1024) }
	if w := weight(c.Services["signpost-worker"]); w >= weight(c.Services["signpost-api"]) || w >= weight(c.Services["redis"]) {
		t.Errorf("signpost-worker's cpu_shares %d is not below the API's and Redis's", w)
	}

	redis := c.Services["redis"]
	if src, ok := redis.mount("/usr/local/etc/redis/redis.conf"); !ok || src != "./redis.conf" ||
		!slices.Contains(redis.Command, "/usr/local/etc/redis/redis.conf") {
		t.Error("redis does not run with deploy/redis.conf")
	}
	if src, ok := redis.mount("/data"); !ok || c.Volumes[src] == nil {
		t.Error("redis data is not on a named volume")
	}
	if redis.Healthcheck == nil || !strings.Contains(strings.Join(redis.Healthcheck.Test, " "), "redis-cli ping") {
		t.Error("redis has no redis-cli ping healthcheck")
	}
	if len(redis.Ports) > 0 {
		t.Errorf("redis publishes %v; only the stack's network needs it", redis.Ports)
	}

	cfgFile := ""
	names := map[string]bool{}
	for _, name := range []string{"signpost-api", "signpost-worker"} {
		s := c.Services[name]
		if s.Build == nil || s.Build.Dockerfile != "deploy/Dockerfile" {
			t.Errorf("%s: build = %+v, want deploy/Dockerfile", name, s.Build)
		} else if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
			t.Errorf("%s: build context does not hold the Dockerfile: %v", name, err)
		}
		if s.DependsOn["redis"].Condition != "service_healthy" {
			t.Errorf("%s does not wait for a healthy redis", name)
		}
		target := flagValue(s.Command, "-config")
		src, ok := s.mount(target)
		if target == "" || !ok {
			t.Errorf("%s: -config %q is not a mounted file", name, target)
		}
		if cfgFile == "" {
			cfgFile = src
		} else if src != cfgFile {
			t.Errorf("%s reads %s, the API %s: both must share one configuration", name, src, cfgFile)
		}
		if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
			t.Errorf("%s: read_only %v, cap_drop %v; want a read-only root and no capabilities", name, s.ReadOnly, s.CapDrop)
		}
		// Telemetry goes to the collector's OTLP gRPC receiver.
		host, port := hostPort(t, s.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"])
		if host != "otel-collector" || port != otlpGRPCPort(t) {
			t.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT = %q, want the otel-collector service on its gRPC port",
				name, s.Environment["OTEL_EXPORTER_OTLP_ENDPOINT"])
		}
		sn := s.Environment["OTEL_SERVICE_NAME"]
		if sn == "" || names[sn] {
			t.Errorf("%s: OTEL_SERVICE_NAME %q is empty or shared", name, sn)
		}
		names[sn] = true
	}
	if cfgFile != "./signpost-compose.yaml" {
		t.Errorf("signpost services read %s, want ./signpost-compose.yaml", cfgFile)
	}
	if api := c.Services["signpost-api"]; len(api.Command) == 0 || api.Command[0] != "serve" || !slices.Contains(api.Command, "-workers=false") {
		t.Errorf("signpost-api runs %v, want serve -workers=false", api.Command)
	}
	if w := c.Services["signpost-worker"]; len(w.Command) == 0 || w.Command[0] != "worker" {
		t.Errorf("signpost-worker runs %v, want worker", w.Command)
	}

	// The container configuration: the API's published port is the one it
	// listens on, and Redis is the compose service.
	cfg := loadNetworkedConfig(t, "signpost-compose.yaml")
	_, listenPort := hostPort(t, cfg.Listen)
	published := false
	for _, p := range c.Services["signpost-api"].Ports {
		parts := strings.Split(p, ":")
		published = published || parts[len(parts)-1] == listenPort
	}
	if !published {
		t.Errorf("signpost-api publishes %v, not its listen port %s", c.Services["signpost-api"].Ports, listenPort)
	}
	if host, _ := hostPort(t, cfg.RedisURL); c.Services[host].Image == "" || !strings.HasPrefix(c.Services[host].Image, "redis:") {
		t.Errorf("redis_url %s does not name the redis service", cfg.RedisURL)
	}

	otel := c.Services["otel-collector"]
	if !strings.HasPrefix(otel.Image, "otel/opentelemetry-collector-contrib:") {
		t.Errorf("otel-collector image %s", otel.Image)
	}
	if src, ok := otel.mount(strings.TrimPrefix(flagValue(otel.Command, "--config"), "file:")); !ok || src != "./otel-collector.yaml" {
		t.Errorf("otel-collector does not run with deploy/otel-collector.yaml: %v %v", otel.Command, otel.Volumes)
	}
	jaeger := c.Services["jaeger"]
	if !strings.HasPrefix(jaeger.Image, "jaegertracing/all-in-one:") || !slices.ContainsFunc(jaeger.Ports, func(p string) bool { return strings.HasSuffix(p, ":16686") }) {
		t.Errorf("jaeger: image %s, ports %v; want all-in-one with the UI on 16686", jaeger.Image, jaeger.Ports)
	}
}

// ---- OpenTelemetry Collector ----

type otelConfig struct {
	Receivers  map[string]map[string]any
	Processors map[string]any
	Exporters  map[string]map[string]any
	Extensions map[string]any
	Service    struct {
		Extensions []string
		Pipelines  map[string]struct {
			Receivers, Processors, Exporters []string
		}
	}
}

func readOTelConfig(t *testing.T) otelConfig {
	t.Helper()
	b, err := os.ReadFile("otel-collector.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var o otelConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&o); err != nil {
		t.Fatal(err)
	}
	return o
}

// otlpGRPCPort is the port of the collector's OTLP gRPC receiver.
func otlpGRPCPort(t *testing.T) string {
	t.Helper()
	o := readOTelConfig(t)
	protocols, _ := o.Receivers["otlp"]["protocols"].(map[string]any)
	grpc, _ := protocols["grpc"].(map[string]any)
	ep, _ := grpc["endpoint"].(string)
	if ep == "" {
		t.Fatal("otel-collector.yaml: no otlp gRPC receiver endpoint")
	}
	_, port := hostPort(t, ep)
	return port
}

func TestOTelCollectorConfig(t *testing.T) {
	t.Parallel()
	o := readOTelConfig(t)
	if otlpGRPCPort(t) != "4317" {
		t.Error("the OTLP gRPC receiver is not on 4317")
	}
	used := map[string]bool{}
	for name, p := range o.Service.Pipelines {
		if len(p.Receivers) == 0 || len(p.Exporters) == 0 {
			t.Errorf("pipeline %s needs receivers and exporters", name)
		}
		for _, r := range p.Receivers {
			used["receiver "+r] = true
			if _, ok := o.Receivers[r]; !ok {
				t.Errorf("pipeline %s: receiver %s is not defined", name, r)
			}
		}
		for _, r := range p.Processors {
			used["processor "+r] = true
			if _, ok := o.Processors[r]; !ok {
				t.Errorf("pipeline %s: processor %s is not defined", name, r)
			}
		}
		for _, r := range p.Exporters {
			used["exporter "+r] = true
			if _, ok := o.Exporters[r]; !ok {
				t.Errorf("pipeline %s: exporter %s is not defined", name, r)
			}
		}
	}
	// The memory limiter must see data before anything holds on to it.
	for name, p := range o.Service.Pipelines {
		if len(p.Processors) == 0 || p.Processors[0] != "memory_limiter" {
			t.Errorf("pipeline %s: processors %v, want memory_limiter first", name, p.Processors)
		}
	}
	for _, e := range o.Service.Extensions {
		if _, ok := o.Extensions[e]; !ok {
			t.Errorf("extension %s is not defined", e)
		}
	}
	for kind, defined := range map[string][]string{"receiver": keys(o.Receivers), "processor": keys(o.Processors), "exporter": keys(o.Exporters)} {
		for _, n := range defined {
			if !used[kind+" "+n] {
				t.Errorf("%s %s is defined but in no pipeline", kind, n)
			}
		}
	}

	// Traces reach Jaeger, a service of the compose stack; metrics reach
	// the Prometheus exporter.
	services := readCompose(t).Services
	toJaeger := false
	for _, e := range o.Service.Pipelines["traces"].Exporters {
		if ep, ok := o.Exporters[e]["endpoint"].(string); ok {
			host, _ := hostPort(t, ep)
			if _, isService := services[host]; !isService {
				t.Errorf("exporter %s sends to %s, which is not a compose service", e, host)
			}
			toJaeger = toJaeger || host == "jaeger"
		}
	}
	if !toJaeger {
		t.Error("the traces pipeline does not export to jaeger")
	}
	if m := o.Service.Pipelines["metrics"].Exporters; !slices.Contains(m, "prometheus") {
		t.Errorf("metrics pipeline exports to %v, want prometheus", m)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ---- Kubernetes ----

type objectMeta struct {
	Name        string
	Namespace   string
	Labels      map[string]string
	Annotations map[string]string
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

// selects reports whether the selector picks pods with these labels. An
// empty selector is treated as selecting nothing: none of ours should be.
func (s labelSelector) selects(labels map[string]string) bool {
	if len(s.MatchLabels) == 0 {
		return false
	}
	for k, v := range s.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

type probe struct {
	HTTPGet *struct {
		Path string
		Port any
	} `yaml:"httpGet"`
	Exec *struct {
		Command []string
	}
	TCPSocket *struct {
		Port any
	} `yaml:"tcpSocket"`
}

type securityContext struct {
	RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
	RunAsUser                *int64 `yaml:"runAsUser"`
	AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
	ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
	Capabilities             *struct {
		Drop []string
	}
	SeccompProfile *struct {
		Type string
	} `yaml:"seccompProfile"`
}

type container struct {
	Name    string
	Image   string
	Command []string
	Args    []string
	Ports   []struct {
		Name          string
		ContainerPort int `yaml:"containerPort"`
	}
	Env []struct {
		Name, Value string
	}
	EnvFrom []struct {
		SecretRef *struct {
			Name string
		} `yaml:"secretRef"`
		ConfigMapRef *struct {
			Name string
		} `yaml:"configMapRef"`
	} `yaml:"envFrom"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Lifecycle      *struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int
			}
		} `yaml:"preStop"`
	}
	Resources struct {
		Requests map[string]any
		Limits   map[string]any
	}
	SecurityContext *securityContext `yaml:"securityContext"`
	VolumeMounts    []struct {
		Name      string
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

// port resolves a probe's or Service's port (a number or a port name) to
// the container port it means, 0 if none.
func (c container) port(p any) int {
	for _, cp := range c.Ports {
		switch v := p.(type) {
		case int:
			if v == cp.ContainerPort {
				return v
			}
		case string:
			if v == cp.Name {
				return cp.ContainerPort
			}
		}
	}
	return 0
}

type podSpec struct {
	TerminationGracePeriodSeconds *int             `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               *securityContext `yaml:"securityContext"`
	Containers                    []container
	Volumes                       []struct {
		Name      string
		ConfigMap *struct {
			Name string
		} `yaml:"configMap"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		}
		EmptyDir any `yaml:"emptyDir"`
	}
}

type workload struct {
	Spec struct {
		Replicas    *int
		ServiceName string `yaml:"serviceName"`
		Selector    labelSelector
		Template    struct {
			Metadata objectMeta
			Spec     podSpec
		}
		VolumeClaimTemplates []struct {
			Metadata objectMeta
		} `yaml:"volumeClaimTemplates"`
	}
}

// manifest is one Kubernetes object from deploy/k8s.
type manifest struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string
	Metadata   objectMeta
	file       string
	node       *yaml.Node
}

func (m manifest) String() string { return m.file + ": " + m.Kind + "/" + m.Metadata.Name }

func (m manifest) decode(t *testing.T, v any) {
	t.Helper()
	if err := m.node.Decode(v); err != nil {
		t.Fatalf("%s: %v", m, err)
	}
}

// cluster is every object of deploy/k8s, indexed.
type cluster struct {
	all       []manifest
	byKind    map[string]map[string]manifest
	workloads map[string]workload // "Deployment/name", "StatefulSet/name"
}

func (c *cluster) get(t *testing.T, kind, name string) manifest {
	t.Helper()
	m, ok := c.byKind[kind][name]
	if !ok {
		t.Fatalf("deploy/k8s has no %s %s", kind, name)
	}
	return m
}

// podsSelectedBy lists the workloads whose pods sel picks.
func (c *cluster) podsSelectedBy(sel labelSelector) []string {
	var out []string
	for _, name := range keys(c.workloads) {
		if sel.selects(c.workloads[name].Spec.Template.Metadata.Labels) {
			out = append(out, name)
		}
	}
	return out
}

// readManifests parses every YAML file of deploy/k8s, each document of a
// multi-document file on its own.
func readManifests(t *testing.T) *cluster {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("k8s", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/k8s: %v", err)
	}
	c := newCluster()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c.add(t, filepath.ToSlash(f), b)
	}
	return c
}

func newCluster() *cluster {
	return &cluster{byKind: map[string]map[string]manifest{}, workloads: map[string]workload{}}
}

// add parses the objects of one file (or of helm template's output), each
// in the namespace signpost.
func (c *cluster) add(t *testing.T, f string, b []byte) {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for i := 1; ; i++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s, document %d: %v", f, i, err)
		}
		if len(n.Content) == 0 {
			continue // a document of comments alone
		}
		m := manifest{file: f, node: &n}
		m.decode(t, &m)
		if m.APIVersion == "" || m.Kind == "" || m.Metadata.Name == "" {
			t.Errorf("%s, document %d: apiVersion, kind and metadata.name are required", f, i)
			continue
		}
		switch {
		case m.Kind == "Namespace":
			if m.Metadata.Namespace != "" {
				t.Errorf("%s: a Namespace has no namespace", m)
			}
		case m.Metadata.Namespace != "signpost":
			t.Errorf("%s: namespace %q, want signpost", m, m.Metadata.Namespace)
		}
		if c.byKind[m.Kind] == nil {
			c.byKind[m.Kind] = map[string]manifest{}
		}
		if prev, dup := c.byKind[m.Kind][m.Metadata.Name]; dup {
			t.Errorf("%s is also in %s", m, prev.file)
		}
		c.byKind[m.Kind][m.Metadata.Name] = m
		c.all = append(c.all, m)
		if m.Kind == "Deployment" || m.Kind == "StatefulSet" {
			var w workload
			m.decode(t, &w)
			c.workloads[m.Kind+"/"+m.Metadata.Name] = w
		}
	}
}

func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	c := readManifests(t)

	// kubectl apply -f deploy/k8s/ goes in file-name order: the namespace
	// must come first.
	c.get(t, "Namespace", "signpost")
	if ns := c.get(t, "Namespace", "signpost"); ns.file != c.all[0].file {
		t.Errorf("the namespace is in %s, but %s is applied first", ns.file, c.all[0].file)
	}

	for name, w := range c.workloads {
		checkWorkload(t, c, name, w)
	}

	api := c.workloads["Deployment/signpost-api"]
	worker := c.workloads["Deployment/signpost-worker"]
	sts := c.workloads["StatefulSet/redis"]
	if len(api.Spec.Template.Spec.Containers) != 1 || len(worker.Spec.Template.Spec.Containers) != 1 || len(sts.Spec.Template.Spec.Containers) != 1 {
		t.Fatal("signpost-api, signpost-worker and redis must each run one container")
	}
	apiC, workerC := api.Spec.Template.Spec.Containers[0], worker.Spec.Template.Spec.Containers[0]

	// The Signpost configuration the pods mount.
	cmName, key := mountedConfigMapKey(t, api, apiC, flagValue(apiC.Args, "-config"))
	if wName, wKey := mountedConfigMapKey(t, worker, workerC, flagValue(workerC.Args, "-config")); wName != cmName || wKey != key {
		t.Errorf("the worker reads ConfigMap %s key %s, the API %s key %s: both must share one configuration", wName, wKey, cmName, key)
	}
	cfg := signpostConfigFrom(t, c, cmName, key)
	_, listenPort := hostPort(t, cfg.Listen)
	// Behind an Ingress every caller arrives from the controller: without
	// trusted proxies all of them would share one sign-in and token
	// allowance, and every audit record would name the controller.
	if len(cfg.TrustedProxies) == 0 {
		t.Error("the Kubernetes configuration trusts no proxy, though the API sits behind an Ingress")
	}

	t.Run("api", func(t *testing.T) {
		if r := api.Spec.Replicas; r == nil || *r != 2 {
			t.Errorf("replicas = %v, want 2", deref(r))
		}
		if len(apiC.Args) == 0 || apiC.Args[0] != "serve" || !slices.Contains(apiC.Args, "-workers=false") || len(apiC.Command) > 0 {
			t.Errorf("runs command %v args %v, want args serve -workers=false", apiC.Command, apiC.Args)
		}
		for _, p := range []struct {
			probe *probe
			path  string
		}{{apiC.ReadinessProbe, "/readyz"}, {apiC.LivenessProbe, "/healthz"}} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("no HTTP probe for %s", p.path)
				continue
			}
			port := apiC.port(p.probe.HTTPGet.Port)
			if p.probe.HTTPGet.Path != p.path || port == 0 || strconv.Itoa(port) != listenPort {
				t.Errorf("probe GET %s on port %v (container port %d), want %s on the listen port %s",
					p.probe.HTTPGet.Path, p.probe.HTTPGet.Port, port, p.path, listenPort)
			}
		}
		// SIGTERM comes after preStop; then serve needs up to 10 s.
		wait := 10
		if l := apiC.Lifecycle; l != nil && l.PreStop != nil && l.PreStop.Sleep != nil {
			wait += l.PreStop.Sleep.Seconds
		}
		if g := api.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g <= wait {
			t.Errorf("terminationGracePeriodSeconds = %v, want more than %d", deref(g), wait)
		}
	})

	t.Run("worker", func(t *testing.T) {
		if r := worker.Spec.Replicas; r == nil || *r != 2 {
			t.Errorf("replicas = %v, want 2", deref(r))
		}
		if len(workerC.Args) == 0 || workerC.Args[0] != "worker" || len(workerC.Command) > 0 {
			t.Errorf("runs command %v args %v, want args worker", workerC.Command, workerC.Args)
		}
		if g := worker.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g <= 10 {
			t.Errorf("terminationGracePeriodSeconds = %v, want more than the workers' 10 s", deref(g))
		}
		if apiC.Image != workerC.Image || !strings.Contains(apiC.Image, "signpost") {
			t.Errorf("images %s and %s: the API and the workers run the same signpost image", apiC.Image, workerC.Image)
		}
		for _, svc := range c.byKind["Service"] {
			var s struct {
				Spec struct{ Selector map[string]string }
			}
			svc.decode(t, &s)
			if (labelSelector{s.Spec.Selector}).selects(worker.Spec.Template.Metadata.Labels) {
				t.Errorf("Service %s selects the workers, which serve nothing", svc.Metadata.Name)
			}
		}
	})

	t.Run("config", func(t *testing.T) {
		host, port := hostPort(t, cfg.RedisURL)
		if !serviceServes(t, c, host, port) {
			t.Errorf("redis_url %s names no Service port of deploy/k8s", cfg.RedisURL)
		}
		// Write-back tokens are read from the environment: a Secret given
		// to both Deployments must hold each.
		for _, cl := range cfg.Clients {
			if cl.Notify == nil || cl.Notify.BearerTokenEnv == "" {
				continue
			}
			for _, ct := range []container{apiC, workerC} {
				if !envFromSecretHas(t, c, ct, cl.Notify.BearerTokenEnv) {
					t.Errorf("no Secret the pods read holds %s (client %s)", cl.Notify.BearerTokenEnv, cl.ID)
				}
			}
		}
	})

	t.Run("secrets are placeholders", func(t *testing.T) {
		for _, m := range c.byKind["Secret"] {
			var s struct {
				Data       map[string]string
				StringData map[string]string `yaml:"stringData"`
			}
			m.decode(t, &s)
			if len(s.Data) > 0 {
				t.Errorf("%s has data; keep only clearly placeholder stringData here", m)
			}
			for k, v := range s.StringData {
				if !strings.Contains(strings.ToUpper(v), "REPLACE") {
					t.Errorf("%s: %s does not look like a placeholder", m, k)
				}
			}
		}
	})

	t.Run("services", func(t *testing.T) {
		for _, m := range c.byKind["Service"] {
			var s struct {
				Spec struct {
					Selector map[string]string
					Ports    []struct {
						Name       string
						Port       int
						TargetPort any `yaml:"targetPort"`
					}
				}
			}
			m.decode(t, &s)
			picked := c.podsSelectedBy(labelSelector{s.Spec.Selector})
			if len(picked) != 1 {
				t.Errorf("%s selects the pods of %v, want exactly one workload", m, picked)
				continue
			}
			ct := c.workloads[picked[0]].Spec.Template.Spec.Containers
			for _, p := range s.Spec.Ports {
				target := p.TargetPort
				if target == nil {
					target = p.Port
				}
				if !slices.ContainsFunc(ct, func(c container) bool { return c.port(target) != 0 }) {
					t.Errorf("%s: port %s targets %v, which %s does not serve", m, p.Name, target, picked[0])
				}
			}
		}
	})

	t.Run("disruption budgets", func(t *testing.T) {
		for _, want := range []string{"signpost-api", "signpost-worker"} {
			c.get(t, "PodDisruptionBudget", want)
		}
		for _, m := range c.byKind["PodDisruptionBudget"] {
			var p struct {
				Spec struct {
					MinAvailable any `yaml:"minAvailable"`
					Selector     labelSelector
				}
			}
			m.decode(t, &p)
			if p.Spec.MinAvailable != 1 {
				t.Errorf("%s: minAvailable = %v, want 1", m, p.Spec.MinAvailable)
			}
			picked := c.podsSelectedBy(p.Spec.Selector)
			if len(picked) != 1 {
				t.Errorf("%s selects the pods of %v, want exactly one workload", m, picked)
				continue
			}
			// With no more replicas than minAvailable, no node could drain.
			if r := c.workloads[picked[0]].Spec.Replicas; r == nil || *r <= 1 {
				t.Errorf("%s: %s has %v replicas; the budget would block every drain", m, picked[0], deref(r))
			}
		}
	})

	t.Run("autoscalers", func(t *testing.T) {
		for _, m := range c.byKind["HorizontalPodAutoscaler"] {
			var h struct {
				Spec struct {
					ScaleTargetRef struct{ Kind, Name string } `yaml:"scaleTargetRef"`
					MinReplicas    int                         `yaml:"minReplicas"`
					MaxReplicas    int                         `yaml:"maxReplicas"`
				}
			}
			m.decode(t, &h)
			ref := h.Spec.ScaleTargetRef
			if _, ok := c.workloads[ref.Kind+"/"+ref.Name]; !ok {
				t.Errorf("%s scales %s/%s, which does not exist", m, ref.Kind, ref.Name)
			}
			if h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < h.Spec.MinReplicas {
				t.Errorf("%s: %d to %d replicas; at least 2 keep the disruption budget satisfiable", m, h.Spec.MinReplicas, h.Spec.MaxReplicas)
			}
		}
	})

	t.Run("network policies", func(t *testing.T) {
		for _, m := range c.byKind["NetworkPolicy"] {
			var np struct {
				Spec struct {
					PodSelector labelSelector `yaml:"podSelector"`
					Ingress     []struct {
						From []struct {
							PodSelector *labelSelector `yaml:"podSelector"`
						}
					}
				}
			}
			m.decode(t, &np)
			if len(c.podsSelectedBy(np.Spec.PodSelector)) == 0 {
				t.Errorf("%s applies to no pods", m)
			}
			admitted := map[string]bool{}
			for _, in := range np.Spec.Ingress {
				for _, f := range in.From {
					if f.PodSelector == nil {
						continue
					}
					picked := c.podsSelectedBy(*f.PodSelector)
					if len(picked) == 0 {
						t.Errorf("%s admits pods that no workload runs: %v", m, f.PodSelector.MatchLabels)
					}
					for _, p := range picked {
						admitted[p] = true
					}
				}
			}
			if np.Spec.PodSelector.selects(sts.Spec.Template.Metadata.Labels) {
				for _, w := range []string{"Deployment/signpost-api", "Deployment/signpost-worker"} {
					if !admitted[w] {
						t.Errorf("%s keeps %s from Redis", m, w)
					}
				}
			}
		}
	})

	t.Run("redis", func(t *testing.T) {
		if r := sts.Spec.Replicas; r == nil || *r != 1 {
			t.Errorf("replicas = %v, want 1", deref(r))
		}
		svc := c.get(t, "Service", sts.Spec.ServiceName)
		var s struct {
			Spec struct {
				ClusterIP string `yaml:"clusterIP"`
			}
		}
		svc.decode(t, &s)
		if s.Spec.ClusterIP != "None" {
			t.Errorf("serviceName %s is not a headless Service", sts.Spec.ServiceName)
		}
		rc := sts.Spec.Template.Spec.Containers[0]
		argv := append(slices.Clone(rc.Command), rc.Args...)
		if p := rc.ReadinessProbe; p == nil || p.Exec == nil || !strings.Contains(strings.Join(p.Exec.Command, " "), "redis-cli ping") {
			t.Error("no readiness probe running redis-cli ping")
		}
		// The configuration file on its command line comes from a ConfigMap
		// whose settings are deploy/redis.conf's.
		conf := ""
		for _, a := range argv {
			if strings.HasSuffix(a, ".conf") {
				conf = a
			}
		}
		cmName, key := mountedConfigMapKey(t, sts, rc, conf)
		var cm struct{ Data map[string]string }
		c.get(t, "ConfigMap", cmName).decode(t, &cm)
		got := redisDirectives(t, strings.NewReader(cm.Data[key]))
		checkRedisDurability(t, "ConfigMap "+cmName, got)
		if want := readRedisConf(t); !maps.Equal(got, want) {
			t.Errorf("ConfigMap %s redis.conf = %v, want deploy/redis.conf's %v", cmName, got, want)
		}
		// Its data directory is on the claim template's volume.
		dir := flagValue(argv, "--dir")
		onClaim := false
		for _, vm := range rc.VolumeMounts {
			for _, vct := range sts.Spec.VolumeClaimTemplates {
				onClaim = onClaim || (vm.MountPath == dir && vm.Name == vct.Metadata.Name)
			}
		}
		if dir == "" || !onClaim {
			t.Errorf("--dir %q is not a volume from volumeClaimTemplates", dir)
		}
		if flagValue(argv, "--maxmemory") == "" {
			t.Error("no --maxmemory: noeviction then has no limit to enforce, and the container is killed instead")
		}
	})
}

// checkWorkload checks what every pod of ours needs: a selector that picks
// its own pods, resources, a non-root user the kubelet can verify, no
// privileges, a read-only root, and volumes that exist.
func checkWorkload(t *testing.T, c *cluster, name string, w workload) {
	t.Helper()
	spec := w.Spec.Template.Spec
	if !w.Spec.Selector.selects(w.Spec.Template.Metadata.Labels) {
		t.Errorf("%s: selector %v does not pick its own pods %v", name, w.Spec.Selector.MatchLabels, w.Spec.Template.Metadata.Labels)
	}
	if len(spec.Containers) == 0 {
		t.Errorf("%s has no containers", name)
	}
	pod := spec.SecurityContext
	if pod == nil {
		pod = &securityContext{}
	}
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
		if v.ConfigMap != nil {
			c.get(t, "ConfigMap", v.ConfigMap.Name)
		}
		if v.Secret != nil {
			c.get(t, "Secret", v.Secret.SecretName)
		}
	}
	for _, vct := range w.Spec.VolumeClaimTemplates {
		volumes[vct.Metadata.Name] = true
	}
	for _, ct := range spec.Containers {
		where := name + " container " + ct.Name
		for _, kind := range []string{"requests", "limits"} {
			r := ct.Resources.Requests
			if kind == "limits" {
				r = ct.Resources.Limits
			}
			for _, res := range []string{"cpu", "memory"} {
				if r[res] == nil {
					t.Errorf("%s: no %s.%s", where, kind, res)
				}
			}
		}
		sc := ct.SecurityContext
		if sc == nil {
			sc = &securityContext{}
		}
		if !pick(sc.RunAsNonRoot, pod.RunAsNonRoot) {
			t.Errorf("%s: runAsNonRoot is not true", where)
		}
		// The signpost image's USER is a name (distroless "nonroot"), which
		// the kubelet cannot check against runAsNonRoot: give the number.
		uid := sc.RunAsUser
		if uid == nil {
			uid = pod.RunAsUser
		}
		if uid == nil || *uid == 0 {
			t.Errorf("%s: no non-zero runAsUser", where)
		}
		if !pick(sc.ReadOnlyRootFilesystem, nil) {
			t.Errorf("%s: readOnlyRootFilesystem is not true", where)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation is not false", where)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s: capabilities do not drop ALL", where)
		}
		for _, vm := range ct.VolumeMounts {
			if !volumes[vm.Name] {
				t.Errorf("%s mounts volume %s, which the pod does not have", where, vm.Name)
			}
		}
		for _, ef := range ct.EnvFrom {
			if ef.SecretRef != nil {
				c.get(t, "Secret", ef.SecretRef.Name)
			}
			if ef.ConfigMapRef != nil {
				c.get(t, "ConfigMap", ef.ConfigMapRef.Name)
			}
		}
	}
}

// deref shows what a pointer from a manifest holds (nil when it is unset).
func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// pick is the container's setting if it has one, else the pod's; true
// only if that is true.
func pick(container, pod *bool) bool {
	if container != nil {
		return *container
	}
	return pod != nil && *pod
}

// mountedConfigMapKey finds the ConfigMap and key that file, a path inside
// the container, comes from.
func mountedConfigMapKey(t *testing.T, w workload, ct container, file string) (string, string) {
	t.Helper()
	if file == "" {
		t.Fatalf("container %s names no file on its command line", ct.Name)
	}
	dir, base := path.Dir(file), path.Base(file)
	for _, vm := range ct.VolumeMounts {
		if vm.MountPath != dir {
			continue
		}
		for _, v := range w.Spec.Template.Spec.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil {
				return v.ConfigMap.Name, base
			}
		}
	}
	t.Fatalf("container %s: %s is not on a ConfigMap volume", ct.Name, file)
	return "", ""
}

// signpostConfigFrom loads the Signpost configuration held in a ConfigMap
// as Signpost would, from a file.
func signpostConfigFrom(t *testing.T, c *cluster, cmName, key string) config.Config {
	t.Helper()
	var cm struct{ Data map[string]string }
	c.get(t, "ConfigMap", cmName).decode(t, &cm)
	text, ok := cm.Data[key]
	if !ok {
		t.Fatalf("ConfigMap %s has no %s", cmName, key)
	}
	file := filepath.Join(t.TempDir(), key)
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return loadNetworkedConfig(t, file)
}

// serviceServes reports whether a Service named host offers port.
func serviceServes(t *testing.T, c *cluster, host, port string) bool {
	t.Helper()
	m, ok := c.byKind["Service"][host]
	if !ok {
		return false
	}
	var s struct {
		Spec struct{ Ports []struct{ Port int } }
	}
	m.decode(t, &s)
	return slices.ContainsFunc(s.Spec.Ports, func(p struct{ Port int }) bool { return strconv.Itoa(p.Port) == port })
}

// envFromSecretHas reports whether a Secret the container takes its
// environment from holds key.
func envFromSecretHas(t *testing.T, c *cluster, ct container, key string) bool {
	t.Helper()
	for _, ef := range ct.EnvFrom {
		if ef.SecretRef == nil {
			continue
		}
		m, ok := c.byKind["Secret"][ef.SecretRef.Name]
		if !ok {
			continue
		}
		var s struct {
			Data       map[string]string
			StringData map[string]string `yaml:"stringData"`
		}
		m.decode(t, &s)
		if _, ok := s.StringData[key]; ok {
			return true
		}
		if _, ok := s.Data[key]; ok {
			return true
		}
	}
	return false
}

// ---- compose on a Redis Cluster ----

// The cluster stack: six nodes with the durability settings and cluster
// mode, formed once into three primaries with a replica each before
// Signpost starts, and a Signpost configuration naming every node and
// acknowledging only what a replica has.
func TestComposeClusterFile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("compose-cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for i := range 6 {
		name := fmt.Sprintf("redis-%d", i)
		s, ok := c.Services[name]
		if !ok {
			t.Fatalf("no service %s", name)
		}
		nodes = append(nodes, name+":6379")
		if src, ok := s.mount("/usr/local/etc/redis/redis.conf"); !ok || src != "./redis.conf" || !slices.Contains(s.Command, "/usr/local/etc/redis/redis.conf") {
			t.Errorf("%s does not run with deploy/redis.conf", name)
		}
		if src, ok := s.mount("/data"); !ok || c.Volumes[src] == nil || src != name {
			t.Errorf("%s: data not on a volume of its own: %v", name, s.Volumes)
		}
		if flagValue(s.Command, "--cluster-enabled") != "yes" || flagValue(s.Command, "--cluster-announce-hostname") != name ||
			flagValue(s.Command, "--maxmemory") == "" || flagValue(s.Command, "--cluster-config-file") != "/data/nodes.conf" {
			t.Errorf("%s: %v lacks cluster mode, its announced name, its nodes.conf on the volume, or maxmemory", name, s.Command)
		}
		if s.Healthcheck == nil || len(s.Ports) > 0 {
			t.Errorf("%s: healthcheck %v, ports %v", name, s.Healthcheck, s.Ports)
		}
	}
	init := c.Services["redis-cluster-init"]
	script := strings.Join(init.Command, " ")
	if !strings.Contains(script, "--cluster create") || !strings.Contains(script, "--cluster-replicas 1") || len(init.DependsOn) != 6 {
		t.Errorf("redis-cluster-init does not form the cluster of the six nodes with a replica each: %s", script)
	}
	for _, name := range []string{"signpost-api", "signpost-worker"} {
		s := c.Services[name]
		if s.DependsOn["redis-cluster-init"].Condition != "service_completed_successfully" {
			t.Errorf("%s does not wait for the cluster to be formed", name)
		}
		if src, ok := s.mount(flagValue(s.Command, "-config")); !ok || src != "./signpost-compose-cluster.yaml" {
			t.Errorf("%s does not read signpost-compose-cluster.yaml", name)
		}
	}
	cfg := loadNetworkedConfig(t, "signpost-compose-cluster.yaml")
	if !slices.Equal(cfg.RedisCluster, nodes) || cfg.RedisWaitReplicas != 1 {
		t.Errorf("signpost-compose-cluster.yaml: redis_cluster %v, redis_wait_replicas %d; want the six nodes and 1", cfg.RedisCluster, cfg.RedisWaitReplicas)
	}
}

// The Kubernetes Redis Cluster (deploy/k8s/cluster): six nodes with
// deploy/redis.conf's settings and cluster mode, their names announced, a
// Service that lists them before they are ready, and a Job forming three
// primaries with a replica each.
func TestKubernetesRedisCluster(t *testing.T) {
	t.Parallel()
	const file = "k8s/cluster/20-redis-cluster.yaml"
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster()
	c.add(t, file, b)

	var cm struct{ Data map[string]string }
	c.get(t, "ConfigMap", "redis-cluster-config").decode(t, &cm)
	conf := redisDirectives(t, strings.NewReader(cm.Data["redis.conf"]))
	for k, v := range readRedisConf(t) {
		if conf[k] != v {
			t.Errorf("%s: %s = %q, deploy/redis.conf has %q", file, k, conf[k], v)
		}
	}
	if conf["cluster-enabled"] != "yes" || !strings.HasPrefix(conf["cluster-config-file"], "/data/") || conf["cluster-preferred-endpoint-type"] != "hostname" {
		t.Errorf("%s: cluster settings %v", file, conf)
	}

	var svc struct {
		Spec struct {
			ClusterIP                string `yaml:"clusterIP"`
			PublishNotReadyAddresses bool   `yaml:"publishNotReadyAddresses"`
			Selector                 map[string]string
		}
	}
	c.get(t, "Service", "redis-cluster").decode(t, &svc)
	if svc.Spec.ClusterIP != "None" || !svc.Spec.PublishNotReadyAddresses {
		t.Errorf("the redis-cluster Service must be headless and list pods before they are ready: %+v", svc.Spec)
	}
	w := c.workloads["StatefulSet/redis-cluster"]
	if w.Spec.Replicas == nil || *w.Spec.Replicas != 6 || w.Spec.ServiceName != "redis-cluster" {
		t.Fatalf("the StatefulSet: %d replicas under %q, want 6 under redis-cluster", deref(w.Spec.Replicas), w.Spec.ServiceName)
	}
	if !(labelSelector{MatchLabels: svc.Spec.Selector}).selects(w.Spec.Template.Metadata.Labels) {
		t.Error("the Service does not select the nodes")
	}
	node := w.Spec.Template.Spec.Containers[0]
	if !slices.Contains(node.Args, "/usr/local/etc/redis/redis.conf") || flagValue(node.Args, "--maxmemory") == "" ||
		flagValue(node.Args, "--cluster-announce-hostname") != "$(POD_NAME).redis-cluster.signpost.svc" {
		t.Errorf("a node runs %v: want the ConfigMap's redis.conf, maxmemory and its announced name", node.Args)
	}
	if node.port("cluster-bus") != 16379 || node.port("redis") != 6379 {
		t.Error("a node does not open 6379 and the cluster bus 16379")
	}
	var job struct {
		Spec struct {
			Template struct{ Spec podSpec }
		}
	}
	c.get(t, "Job", "redis-cluster-init").decode(t, &job)
	script := strings.Join(job.Spec.Template.Spec.Containers[0].Args, " ")
	if !strings.Contains(script, "--cluster create") || !strings.Contains(script, "--cluster-replicas 1") || !strings.Contains(script, "for i in 0 1 2 3 4 5") {
		t.Errorf("the Job does not form the cluster of the six nodes with a replica each: %s", script)
	}
}
