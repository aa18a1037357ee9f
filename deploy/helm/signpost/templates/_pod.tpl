{{/*
The pod of the API or the workers: give a dict of root, component and args.
Both run the same image as non-root ("restricted" Pod Security Standard),
read the configuration file and take their environment from the Secret.
*/}}
{{- define "signpost.pod" -}}
{{- $root := .root -}}
metadata:
  labels:
    {{- include "signpost.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
  annotations:
    # A new configuration rolls the pods: Signpost reads it at start.
    checksum/config: {{ toYaml $root.Values.config | sha256sum }}
    {{- if eq .component "api" }}
    prometheus.io/scrape: "true"
    prometheus.io/port: "9090"
    prometheus.io/path: /metrics
    {{- end }}
    {{- with $root.Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  automountServiceAccountToken: false
  # preStop sleep (5 s) + 10 s for requests and sends in flight, with room.
  terminationGracePeriodSeconds: 30
  securityContext:
    runAsNonRoot: true
    # distroless's "nonroot": a name the kubelet cannot check, so the number.
    runAsUser: 65532
    runAsGroup: 65532
    seccompProfile:
      type: RuntimeDefault
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  topologySpreadConstraints:
    - maxSkew: 1
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "signpost.selector" . | nindent 10 }}
  containers:
    - name: signpost
      image: {{ include "signpost.image" $root | quote }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args:
        {{- toYaml .args | nindent 8 }}
      env:
        - name: OTEL_SERVICE_NAME
          value: signpost-{{ .component }}
        {{- with $root.Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      envFrom:
        - secretRef:
            name: {{ include "signpost.secretName" $root }}
      {{- if eq .component "api" }}
      ports:
        - name: http
          containerPort: 8080
        - name: metrics
          containerPort: 9090
      # Not ready while Redis is unreachable; /healthz answers while the
      # process serves at all (restarting cannot mend Redis).
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        periodSeconds: 5
        timeoutSeconds: 2
        failureThreshold: 3
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        initialDelaySeconds: 5
        periodSeconds: 10
        timeoutSeconds: 2
        failureThreshold: 3
      lifecycle:
        # Wait for the endpoints to drop the pod before serve stops taking
        # connections (sleep action: Kubernetes 1.30 or later).
        preStop:
          sleep:
            seconds: 5
      {{- end }}
      resources:
        {{- toYaml (index $root.Values .component).resources | nindent 8 }}
      securityContext:
        runAsNonRoot: true
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: [ALL]
      volumeMounts:
        - name: config
          mountPath: /etc/signpost
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if $root.Values.redisCA.secretName }}
        - name: redis-ca
          mountPath: /etc/signpost-redis-ca
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      {{- if $root.Values.configInSecret }}
      secret:
        secretName: {{ include "signpost.fullname" $root }}-config
      {{- else }}
      configMap:
        name: {{ include "signpost.fullname" $root }}-config
      {{- end }}
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- if $root.Values.redisCA.secretName }}
    - name: redis-ca
      secret:
        secretName: {{ $root.Values.redisCA.secretName }}
    {{- end }}
  {{- with $root.Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
