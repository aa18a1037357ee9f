package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const chart = "helm/signpost"

// TestHelmChartFiles checks what can be checked without helm: Chart.yaml,
// values.yaml and the static parts of every template parse, the values
// hold what the chart documents, and the configuration the chart ships is
// one Signpost accepts behind an Ingress.
func TestHelmChartFiles(t *testing.T) {
	t.Parallel()
	var meta struct {
		APIVersion string `yaml:"apiVersion"`
		Name       string
		Version    string
		AppVersion string `yaml:"appVersion"`
	}
	readYAML(t, filepath.Join(chart, "Chart.yaml"), &meta)
	if meta.APIVersion != "v2" || meta.Name != "signpost" || !regexp.MustCompile(`^\d+\.\d+\.\d+`).MatchString(meta.Version) || meta.AppVersion == "" {
		t.Errorf("Chart.yaml: %+v, want apiVersion v2, name signpost, a SemVer version and an appVersion", meta)
	}

	var values map[string]any
	readYAML(t, filepath.Join(chart, "values.yaml"), &values)
	for _, key := range []string{"image", "api", "worker", "config", "secrets", "ingress", "service"} {
		if values[key] == nil {
			t.Errorf("values.yaml has no %s", key)
		}
	}
	for _, part := range []string{"api", "worker"} {
		p, _ := values[part].(map[string]any)
		if p["replicas"] == nil || p["resources"] == nil {
			t.Errorf("values.yaml: %s lacks replicas or resources", part)
		}
	}
	// The configuration the pods get, as Signpost loads it.
	b, err := yaml.Marshal(values["config"])
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "signpost.yaml")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg := loadNetworkedConfig(t, file); len(cfg.TrustedProxies) == 0 {
		t.Error("values.yaml: config trusts no proxy, though the chart puts the API behind an Ingress")
	}

	templates, _ := filepath.Glob(filepath.Join(chart, "templates", "*.yaml"))
	templates = append(templates, filepath.Join(chart, "templates", "_pod.tpl"))
	for _, f := range templates {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		static := staticParts(string(src))
		dec := yaml.NewDecoder(strings.NewReader(static))
		for i := 1; ; i++ {
			var doc map[string]any
			if err := dec.Decode(&doc); err != nil {
				if err.Error() != "EOF" {
					t.Errorf("%s, document %d: the static parts do not parse: %v\n%s", f, i, err, static)
				}
				break
			}
			if strings.HasSuffix(f, ".yaml") && doc != nil && (doc["apiVersion"] == nil || doc["kind"] == nil || doc["metadata"] == nil) {
				t.Errorf("%s, document %d: apiVersion, kind and metadata are required", f, i)
			}
		}
	}
}

var (
	templateComment = regexp.MustCompile(`(?s)\{\{-?\s*/\*.*?\*/\s*-?\}\}`)
	templateAction  = regexp.MustCompile(`\{\{.*?\}\}`)
)

// staticParts is a template without its template language: comments and
// lines of actions alone (control, or blocks put in by include and toYaml)
// dropped, an action within a line replaced by a placeholder.
func staticParts(src string) string {
	src = templateComment.ReplaceAllString(src, "")
	var out []string
	for _, line := range strings.Split(src, "\n") {
		if strings.TrimSpace(templateAction.ReplaceAllString(line, "")) == "" && templateAction.MatchString(line) {
			continue
		}
		out = append(out, templateAction.ReplaceAllString(line, "x"))
	}
	return strings.Join(out, "\n")
}

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// TestHelmChartRenders lints the chart and renders it with helm, when helm
// is installed (.ci/run installs it), and checks the objects as the
// Kubernetes manifests are checked: workloads that meet the restricted
// standard, one configuration for both, the Service and the Ingress on
// the API alone.
func TestHelmChartRenders(t *testing.T) {
	helm, err := exec.LookPath("helm")
	if err != nil {
		t.Skip("helm is not installed; the chart's files are still checked by TestHelmChartFiles")
	}
	t.Parallel()
	if out, err := exec.Command(helm, "lint", "--strict", chart).CombinedOutput(); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	for _, set := range []string{"", "ingress.enabled=true,api.autoscaling.enabled=true", "configInSecret=true,secrets.existingSecret=signpost-env-from-store", "redisCA.secretName=signpost-redis-ca"} {
		t.Run("set "+set, func(t *testing.T) {
			args := []string{"template", "signpost", chart, "--namespace", "signpost"}
			if set != "" {
				args = append(args, "--set", set)
			}
			out, err := exec.Command(helm, args...).Output()
			if err != nil {
				t.Fatalf("helm %v: %v", args, err)
			}
			c := newCluster()
			c.add(t, "helm template", out)
			if set == "configInSecret=true,secrets.existingSecret=signpost-env-from-store" {
				// Made outside the chart; stands in for the real one here.
				c.add(t, "existing", []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: signpost-env-from-store, namespace: signpost}\n"))
			}
			if set == "redisCA.secretName=signpost-redis-ca" {
				c.add(t, "existing", []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: signpost-redis-ca, namespace: signpost}\n"))
			}
			for name, w := range c.workloads {
				checkWorkload(t, c, name, w)
			}
			api, worker := c.workloads["Deployment/signpost-api"], c.workloads["Deployment/signpost-worker"]
			if len(api.Spec.Template.Spec.Containers) != 1 || len(worker.Spec.Template.Spec.Containers) != 1 {
				t.Fatalf("the chart must render signpost-api and signpost-worker, one container each: %v", keys(c.workloads))
			}
			apiC, workerC := api.Spec.Template.Spec.Containers[0], worker.Spec.Template.Spec.Containers[0]
			if apiC.Args[0] != "serve" || !slices.Contains(apiC.Args, "-workers=false") || workerC.Args[0] != "worker" {
				t.Errorf("args %v and %v, want serve -workers=false and worker", apiC.Args, workerC.Args)
			}
			if set == "redisCA.secretName=signpost-redis-ca" {
				// The CA that config.redis_tls_ca names, in both.
				for _, ct := range []container{apiC, workerC} {
					mounted := false
					for _, m := range ct.VolumeMounts {
						mounted = mounted || m.MountPath == "/etc/signpost-redis-ca" && m.ReadOnly
					}
					if !mounted {
						t.Errorf("%v does not mount redisCA at /etc/signpost-redis-ca, read-only", ct.Args)
					}
				}
			}
			if apiC.ReadinessProbe == nil || apiC.ReadinessProbe.HTTPGet == nil || apiC.ReadinessProbe.HTTPGet.Path != "/readyz" {
				t.Error("the API has no /readyz readiness probe")
			}
			if set == "" {
				name, key := mountedConfigMapKey(t, api, apiC, flagValue(apiC.Args, "-config"))
				if cfg := signpostConfigFrom(t, c, name, key); len(cfg.TrustedProxies) == 0 {
					t.Error("the rendered configuration trusts no proxy")
				}
			}
			for _, svc := range c.byKind["Service"] {
				var s struct {
					Spec struct{ Selector map[string]string }
				}
				svc.decode(t, &s)
				sel := labelSelector{s.Spec.Selector}
				if !sel.selects(api.Spec.Template.Metadata.Labels) || sel.selects(worker.Spec.Template.Metadata.Labels) {
					t.Errorf("Service %s must select the API's pods and not the workers'", svc.Metadata.Name)
				}
			}
			for _, pdb := range c.byKind["PodDisruptionBudget"] {
				var p struct {
					Spec struct{ Selector labelSelector }
				}
				pdb.decode(t, &p)
				if got := c.podsSelectedBy(p.Spec.Selector); len(got) != 1 {
					t.Errorf("PodDisruptionBudget %s selects %v, want one workload", pdb.Metadata.Name, got)
				}
			}
			for _, ing := range c.byKind["Ingress"] {
				var i struct {
					Spec struct {
						Rules []struct {
							HTTP struct {
								Paths []struct {
									Backend struct {
										Service struct {
											Name string
											Port struct{ Name string }
										}
									}
								}
							}
						}
					}
				}
				ing.decode(t, &i)
				for _, r := range i.Spec.Rules {
					for _, p := range r.HTTP.Paths {
						if b := p.Backend.Service; b.Name != "signpost-api" || b.Port.Name != "http" {
							t.Errorf("Ingress %s sends to %s port %s, want signpost-api http", ing.Metadata.Name, b.Name, b.Port.Name)
						}
					}
				}
			}
			if strings.Contains(set, "ingress.enabled=true") && len(c.byKind["Ingress"]) != 1 {
				t.Error("ingress.enabled rendered no Ingress")
			}
			if strings.Contains(set, "autoscaling.enabled=true") && (len(c.byKind["HorizontalPodAutoscaler"]) != 1 || api.Spec.Replicas != nil) {
				t.Error("with the autoscaler, want one HorizontalPodAutoscaler and no fixed API replicas")
			}
		})
	}
}
