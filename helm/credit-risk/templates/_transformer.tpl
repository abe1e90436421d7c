{{/* ------------------------------------------------------------------------------------ transformer: names */}}

{{/* The transformer's objects: KServe names its component <isvc>-transformer; deployment mode uses the same
     name for the Deployment, Service, HPA and PDB. The full name is at most 45 characters, so 57 here. */}}
{{- define "credit-risk.transformerName" -}}
{{- printf "%s-transformer" (include "credit-risk.fullname" .) }}
{{- end }}

{{- define "credit-risk.transformerSelectorLabels" -}}
app.kubernetes.io/name: {{ include "credit-risk.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: transformer
{{- end }}

{{/* Labels of the transformer pods: the selector labels win over transformer.podLabels of the same key. */}}
{{- define "credit-risk.transformerPodLabels" -}}
{{- $labels := include "credit-risk.transformerSelectorLabels" . | fromYaml }}
{{- $_ := set $labels "app.kubernetes.io/part-of" "credit-risk" }}
{{- toYaml (merge $labels (deepCopy .Values.transformer.podLabels)) }}
{{- end }}

{{- define "credit-risk.redisName" -}}
{{- printf "%s-redis" (include "credit-risk.fullname" .) }}
{{- end }}

{{- define "credit-risk.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "credit-risk.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: feature-store
{{- end }}

{{- define "credit-risk.redisImage" -}}
{{- $i := .Values.redis.image }}
{{- if $i.digest }}{{ printf "%s@%s" $i.repository $i.digest }}{{ else }}{{ printf "%s:%s" $i.repository $i.tag }}{{ end }}
{{- end }}

{{- define "credit-risk.ingestSecretName" -}}
{{- with .Values.transformer.ingest }}
{{- if .existingSecret }}{{ .existingSecret }}{{ else if .token }}{{ printf "%s-ingest" (include "credit-risk.transformerName" $) }}{{ end }}
{{- end }}
{{- end }}

{{/* ------------------------------------------------------------------------------------ transformer: ports */}}

{{/* "true" when the transformer serves V2 gRPC on its own port (never in Knative mode: one container port). */}}
{{- define "credit-risk.transformerGrpcEnabled" -}}
{{- if and (gt (int .Values.transformer.grpcPort) 0) (ne (include "credit-risk.kserveServerless" .) "true") }}true{{ end }}
{{- end }}

{{/* "true" when ingestion has its own port; otherwise it is served on the HTTP port (always in Knative mode). */}}
{{- define "credit-risk.transformerIngestPortEnabled" -}}
{{- if and (gt (int .Values.transformer.ingestPort) 0) (ne (include "credit-risk.kserveServerless" .) "true") }}true{{ end }}
{{- end }}

{{/* The predictor as the transformer reaches it, host:port. kserve mode: KServe's <name>-predictor Service
     (Standard: port 80 -> the HTTP port, gRPC on server.grpcPort; Knative: the route on 80). KServe would
     inject --predictor_host <name>-predictor.<namespace> itself (no port: HTTP on 80, see
     CustomTransformer.GetContainer); the chart passes it with the port so grpc-v2 reaches the gRPC port and
     the value is the same in both modes. deployment mode: the chart's Service. */}}
{{- define "credit-risk.predictorHost" -}}
{{- $grpc := eq .Values.transformer.predictorProtocol "grpc-v2" }}
{{- if eq .Values.mode "kserve" }}
{{- printf "%s-predictor.%s.svc.cluster.local:%d" (include "credit-risk.fullname" .) .Release.Namespace (ternary (int .Values.server.grpcPort) 80 $grpc) }}
{{- else }}
{{- printf "%s.%s.svc.cluster.local:%d" (include "credit-risk.fullname" .) .Release.Namespace (ternary (int .Values.service.grpcPort) (int .Values.service.port) $grpc) }}
{{- end }}
{{- end }}

{{/* In-cluster base URL of the transformer's HTTP port (helm test pod, NOTES). */}}
{{- define "credit-risk.transformerUrl" -}}
{{- if eq .Values.mode "kserve" }}
{{- printf "http://%s.%s.svc.cluster.local" (include "credit-risk.transformerName" .) .Release.Namespace }}
{{- else }}
{{- printf "http://%s.%s.svc.cluster.local:%d" (include "credit-risk.transformerName" .) .Release.Namespace (int .Values.transformer.service.port) }}
{{- end }}
{{- end }}

{{/* In-cluster URL of ingestion (NOTES). */}}
{{- define "credit-risk.transformerIngestUrl" -}}
{{- $t := .Values.transformer }}
{{- if not (include "credit-risk.transformerIngestPortEnabled" .) }}
{{- printf "%s/v1/transactions" (include "credit-risk.transformerUrl" .) }}
{{- else }}
{{- $port := ternary (int $t.ingestPort) (int $t.service.ingestPort) (eq .Values.mode "kserve") }}
{{- printf "%s://%s.%s.svc.cluster.local:%d/v1/transactions" (ternary "https" "http" $t.ingest.tls.enabled) (include "credit-risk.transformerName" .) .Release.Namespace $port }}
{{- end }}
{{- end }}

{{/* ------------------------------------------------------------------------------------ transformer: store */}}

{{/* Where the feature store is: "url", "secret" or "redis" — exactly one. */}}
{{- define "credit-risk.storeSource" -}}
{{- $s := .Values.transformer.store }}
{{- $set := list }}
{{- if $s.url }}{{ $set = append $set "transformer.store.url" }}{{ end }}
{{- if $s.existingSecret }}{{ $set = append $set "transformer.store.existingSecret" }}{{ end }}
{{- if .Values.redis.deploy }}{{ $set = append $set "redis.deploy" }}{{ end }}
{{- if gt (len $set) 1 }}
{{- fail (printf "the transformer's feature store is exactly one of transformer.store.url, transformer.store.existingSecret, redis.deploy; %s are all set: keep one" (join ", " $set)) }}
{{- else if not $set }}
{{- fail "transformer.enabled needs a feature store: set transformer.store.url (redis://host:6379/0), transformer.store.existingSecret (a Secret whose key holds the URL, password included) or redis.deploy=true (the chart's demo Redis)" }}
{{- end }}
{{- if $s.url }}url{{ else if $s.existingSecret }}secret{{ else }}redis{{ end }}
{{- end }}

{{/* The env var carrying the store URL (never a flag: a URL with a password stays out of the args). */}}
{{- define "credit-risk.storeEnv" -}}
{{- $s := .Values.transformer.store }}
{{- $source := include "credit-risk.storeSource" . }}
- name: CREDIT_RISK_TRANSFORMER_STORE
{{- if eq $source "secret" }}
  valueFrom:
    secretKeyRef:
      name: {{ $s.existingSecret | quote }}
      key: {{ $s.key | quote }}
{{- else if eq $source "url" }}
  value: {{ $s.url | quote }}
{{- else }}
  value: {{ printf "redis://%s.%s.svc.cluster.local:%d/0" (include "credit-risk.redisName" .) .Release.Namespace (int .Values.redis.port) | quote }}
{{- end }}
{{- end }}

{{/* ------------------------------------------------------------------------------------ transformer: pod */}}

{{- define "credit-risk.transformerTerminationGracePeriodSeconds" -}}
{{- $t := .Values.transformer }}
{{- $preStop := ternary 0 (int $t.preStopSleepSeconds) (eq (include "credit-risk.kserveServerless" .) "true") }}
{{- add $preStop (int $t.gracePeriodSeconds) (int $t.terminationMarginSeconds) }}
{{- end }}

{{/* The transformer container (kserve: KServe renames containers[0] to kserve-container). The flags KServe
     checks before it appends its own (CustomTransformer.GetContainer: --model_name <isvc name>,
     --predictor_host <name>-predictor.<namespace>, --http_port 8080, matched by prefix) are written in its
     underscore spelling, so KServe appends nothing and the values are the chart's: the V2 model name is
     model.name (not the InferenceService's name) and the predictor address carries its port. The
     transformer accepts both spellings. */}}
{{- define "credit-risk.transformerContainer" -}}
{{- $t := .Values.transformer }}
{{- $serverless := eq (include "credit-risk.kserveServerless" .) "true" -}}
- name: {{ ternary "kserve-container" "transformer" (eq .Values.mode "kserve") }}
  image: {{ include "credit-risk.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: ["python", "-m", "serving.transformer"]
  args:
    - --model_name
    - {{ .Values.model.name | quote }}
    - --predictor_host
    - {{ include "credit-risk.predictorHost" . | quote }}
    - --http_port
    - {{ $t.httpPort | int | quote }}
    - --predictor-protocol
    - {{ $t.predictorProtocol | quote }}
    - --grpc-port
    - {{ ternary ($t.grpcPort | int) 0 (eq (include "credit-risk.transformerGrpcEnabled" .) "true") | quote }}
    - --ingest-port
    - {{ ternary ($t.ingestPort | int) 0 (eq (include "credit-risk.transformerIngestPortEnabled" .) "true") | quote }}
    {{- if include "credit-risk.ingestSecretName" . }}
    - --ingest-token-file
    - /etc/credit-risk/ingest/token
    {{- end }}
    {{- if $t.ingest.tls.enabled }}
    - --ingest-ssl-certfile
    - /etc/credit-risk/ingest-tls/tls.crt
    - --ingest-ssl-keyfile
    - /etc/credit-risk/ingest-tls/tls.key
    - --ingest-ssl-ca-certs
    - /etc/credit-risk/ingest-tls/ca.crt
    {{- end }}
    - --store-timeout-seconds
    - {{ $t.storeTimeoutSeconds | quote }}
    - --predictor-timeout-seconds
    - {{ $t.predictorTimeoutSeconds | quote }}
    - --grace-period-seconds
    - {{ $t.gracePeriodSeconds | int | quote }}
    - --header-timeout-seconds
    - {{ $t.headerTimeoutSeconds | quote }}
    - --body-timeout-seconds
    - {{ $t.bodyTimeoutSeconds | quote }}
    - --keep-alive-seconds
    - {{ $t.keepAliveSeconds | quote }}
    - --max-connections
    - {{ $t.maxConnections | int | quote }}
    - --max-request-bytes
    - {{ $t.maxRequestBytes | int64 | quote }}
    - --max-batch-rows
    - {{ $t.maxBatchRows | int | quote }}
    {{- range $t.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  env:
    {{- include "credit-risk.storeEnv" . | nindent 4 }}
    {{- with $t.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    # The HTTP port first: KServe's Service maps the first port to 80 (kserve mode).
    - name: {{ include "credit-risk.portName" . }}
      containerPort: {{ $t.httpPort }}
      protocol: TCP
    {{- if include "credit-risk.transformerGrpcEnabled" . }}
    - name: grpc
      containerPort: {{ $t.grpcPort }}
      protocol: TCP
    {{- end }}
    {{- if include "credit-risk.transformerIngestPortEnabled" . }}
    - name: ingest
      containerPort: {{ $t.ingestPort }}
      protocol: TCP
    {{- end }}
  {{- if not $serverless }}
  startupProbe:
    httpGet:
      path: /v2/health/live
      port: {{ $t.httpPort }}
    periodSeconds: {{ $t.probes.startup.periodSeconds }}
    timeoutSeconds: {{ $t.probes.startup.timeoutSeconds }}
    failureThreshold: {{ $t.probes.startup.failureThreshold }}
  {{- end }}
  livenessProbe:
    httpGet:
      path: /v2/health/live
      port: {{ $t.httpPort }}
    periodSeconds: {{ $t.probes.liveness.periodSeconds }}
    timeoutSeconds: {{ $t.probes.liveness.timeoutSeconds }}
    failureThreshold: {{ $t.probes.liveness.failureThreshold }}
  readinessProbe:
    httpGet:
      path: /v2/health/ready
      port: {{ $t.httpPort }}
    periodSeconds: {{ $t.probes.readiness.periodSeconds }}
    timeoutSeconds: {{ $t.probes.readiness.timeoutSeconds }}
    failureThreshold: {{ $t.probes.readiness.failureThreshold }}
  {{- if and (not $serverless) (gt (int $t.preStopSleepSeconds) 0) }}
  lifecycle:
    preStop:
      exec:
        command: ["sleep", {{ $t.preStopSleepSeconds | int | quote }}]
  {{- end }}
  resources:
    {{- toYaml $t.resources | nindent 4 }}
  securityContext:
    {{- include "credit-risk.containerSecurityContext" . | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
    {{- if include "credit-risk.ingestSecretName" . }}
    - name: ingest-token
      mountPath: /etc/credit-risk/ingest
      readOnly: true
    {{- end }}
    {{- if $t.ingest.tls.enabled }}
    - name: ingest-tls
      mountPath: /etc/credit-risk/ingest-tls
      readOnly: true
    {{- end }}
{{- end }}

{{- define "credit-risk.transformerVolumes" -}}
{{- $ingest := .Values.transformer.ingest }}
- name: tmp
  emptyDir:
    {{- with .Values.tmp.medium }}
    medium: {{ . }}
    {{- end }}
    sizeLimit: {{ .Values.tmp.sizeLimit }}
{{- with include "credit-risk.ingestSecretName" . }}
- name: ingest-token
  secret:
    secretName: {{ . | quote }}
    defaultMode: 0440
    items:
      - key: {{ ternary $ingest.key "token" (ne $ingest.existingSecret "") | quote }}
        path: token
{{- end }}
{{- if $ingest.tls.enabled }}
- name: ingest-tls
  secret:
    secretName: {{ $ingest.tls.secretName | quote }}
    defaultMode: 0440
    items:
      - key: {{ $ingest.tls.certKey | quote }}
        path: tls.crt
      - key: {{ $ingest.tls.keyKey | quote }}
        path: tls.key
      - key: {{ $ingest.tls.caKey | quote }}
        path: ca.crt
{{- end }}
{{- end }}

{{/* Pod-level fields of the transformer (Deployment pod template, InferenceService transformer): the
     predictor's ServiceAccount, security context and placement; topology spread over the transformer's own
     pods. */}}
{{- define "credit-risk.transformerPodSpec" -}}
serviceAccountName: {{ include "credit-risk.serviceAccountName" . }}
automountServiceAccountToken: false
terminationGracePeriodSeconds: {{ include "credit-risk.transformerTerminationGracePeriodSeconds" . }}
securityContext:
  {{- include "credit-risk.podSecurityContext" . | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .Values.defaultTopologySpread }}
topologySpreadConstraints:
  {{- range $key, $when := dict "kubernetes.io/hostname" "DoNotSchedule" "topology.kubernetes.io/zone" "ScheduleAnyway" }}
  - topologyKey: {{ $key }}
    maxSkew: 1
    whenUnsatisfiable: {{ $when }}
    nodeTaintsPolicy: Honor
    labelSelector:
      matchLabels:
        {{- include "credit-risk.transformerSelectorLabels" $ | nindent 8 }}
    matchLabelKeys:
      - pod-template-hash
  {{- end }}
{{- end }}
containers:
  {{- include "credit-risk.transformerContainer" . | nindent 2 }}
volumes:
  {{- include "credit-risk.transformerVolumes" . | nindent 2 }}
{{- end }}

{{/* Annotations of the transformer pods: deployment mode's scrape annotations, then
     transformer.podAnnotations (which win). kserve mode's scraping is KServe's annotations (the
     InferenceService's, with the transformer's own port on the component). */}}
{{- define "credit-risk.transformerPodAnnotations" -}}
{{- $a := dict }}
{{- if and (eq .Values.mode "deployment") .Values.monitoring.podAnnotations (not (include "credit-risk.serviceMonitorRendered" .)) }}
{{- $_ := set $a "prometheus.io/scrape" "true" }}
{{- $_ := set $a "prometheus.io/port" (.Values.transformer.httpPort | int | toString) }}
{{- $_ := set $a "prometheus.io/path" "/metrics" }}
{{- end }}
{{- toYaml (merge (deepCopy .Values.transformer.podAnnotations) $a) }}
{{- end }}

{{/* ------------------------------------------------------------------------------------ transformer: checks */}}

{{/* Checks the schema cannot express; included by the workload templates when the transformer is on. */}}
{{- define "credit-risk.validateTransformer" -}}
{{- $t := .Values.transformer }}
{{- $serverless := eq (include "credit-risk.kserveServerless" .) "true" }}
{{- $source := include "credit-risk.storeSource" . }}
{{- if and (eq $source "url") (regexMatch "^rediss?://[^/@]*:[^/@]*@" $t.store.url) }}
{{- fail "transformer.store.url carries a password: values are stored in the release unencrypted. Put the URL in a Secret and set transformer.store.existingSecret (and .key) instead" }}
{{- end }}
{{- if and (eq $source "url") (hasPrefix "sqlite:" $t.store.url) (or $t.autoscaling.enabled (gt (int $t.replicas) 1)) }}
{{- fail (printf "transformer.store.url %s is an embedded store, one per pod: set transformer.autoscaling.enabled=false and transformer.replicas=1, or use Redis" $t.store.url) }}
{{- end }}
{{- $a := $t.autoscaling }}
{{- if and $a.enabled (gt (int $a.minReplicas) (int $a.maxReplicas)) }}
{{- fail (printf "transformer.autoscaling.minReplicas (%d) is above transformer.autoscaling.maxReplicas (%d)" (int $a.minReplicas) (int $a.maxReplicas)) }}
{{- end }}
{{- if eq $t.predictorProtocol "grpc-v2" }}
{{- if not (include "credit-risk.grpcEnabled" .) }}
{{- fail (printf "transformer.predictorProtocol grpc-v2 needs the predictor's gRPC port, which is off (%s): use predictorProtocol v2, or server.grpcPort > 0 and kserve.deploymentMode=Standard" (ternary "KServe Knative mode serves HTTP only" "server.grpcPort is 0" $serverless)) }}
{{- end }}
{{- end }}
{{- $ports := dict }}
{{- range $name, $port := dict "transformer.httpPort" $t.httpPort "transformer.grpcPort" $t.grpcPort "transformer.ingestPort" $t.ingestPort }}
{{- if gt (int $port) 0 }}
{{- $key := toString (int $port) }}
{{- if hasKey $ports $key }}
{{- fail (printf "%s and %s are both %s: give each transformer port its own number (0 turns gRPC / the separate ingest port off)" (get $ports $key) $name $key) }}
{{- end }}
{{- $_ := set $ports $key $name }}
{{- end }}
{{- end }}
{{- if eq .Values.mode "deployment" }}
{{- $sp := dict }}
{{- range $name, $port := dict "transformer.service.port" $t.service.port "transformer.service.grpcPort" (ternary $t.service.grpcPort 0 (gt (int $t.grpcPort) 0)) "transformer.service.ingestPort" (ternary $t.service.ingestPort 0 (gt (int $t.ingestPort) 0)) }}
{{- if gt (int $port) 0 }}
{{- $key := toString (int $port) }}
{{- if hasKey $sp $key }}
{{- fail (printf "%s and %s are both %s: give each port of the transformer's Service its own number" (get $sp $key) $name $key) }}
{{- end }}
{{- $_ := set $sp $key $name }}
{{- end }}
{{- end }}
{{- end }}
{{- $ingest := $t.ingest }}
{{- if and $ingest.token $ingest.existingSecret }}
{{- fail "transformer.ingest.token and transformer.ingest.existingSecret are both set: keep one (existingSecret keeps the token out of the release)" }}
{{- end }}
{{- if $ingest.tls.enabled }}
{{- if not $ingest.tls.secretName }}
{{- fail "transformer.ingest.tls.enabled: set transformer.ingest.tls.secretName (a Secret with the certificate, its key and the CA of the producers' client certificates)" }}
{{- end }}
{{- if not (include "credit-risk.transformerIngestPortEnabled" .) }}
{{- fail (printf "transformer.ingest.tls needs ingestion on its own port (%s): mTLS applies to the ingest port only" (ternary "KServe Knative mode has one container port" "transformer.ingestPort is 0" $serverless)) }}
{{- end }}
{{- end }}
{{- $tp := $t.podDisruptionBudget }}
{{- if and $tp.enabled (eq (kindIs "invalid" $tp.maxUnavailable) (kindIs "invalid" $tp.minAvailable)) }}
{{- fail "transformer.podDisruptionBudget: set exactly one of maxUnavailable and minAvailable (the other null)" }}
{{- end }}
{{- $np := .Values.networkPolicy }}
{{- if and $np.enabled $np.egress.restrict (ne $source "redis") (not (hasPrefix "sqlite:" $t.store.url)) (not $t.networkPolicy.egressRules) }}
{{- fail "the transformer's feature store is outside the chart but networkPolicy.egress.restrict allows the transformer only DNS, the predictor and the chart's Redis: add transformer.networkPolicy.egressRules reaching your Redis, or set networkPolicy.egress.restrict=false" }}
{{- end }}
{{- end }}
