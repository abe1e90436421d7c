{{/* ------------------------------------------------------------------------------------ names */}}

{{- define "credit-risk.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. KServe appends "-predictor" (and more) to it, so it is kept
     to 45 characters: Service names are DNS labels (63). */}}
{{- define "credit-risk.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "credit-risk.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "credit-risk.labels" -}}
helm.sh/chart: {{ include "credit-risk.chart" . }}
app.kubernetes.io/name: {{ include "credit-risk.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "credit-risk.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: credit-risk
{{- end }}

{{/* Labels that never change with a chart or image bump: the InferenceService's own labels (KServe copies
     them into the pod template, where a changing label would restart every pod on each upgrade). */}}
{{- define "credit-risk.stableLabels" -}}
app.kubernetes.io/name: {{ include "credit-risk.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: credit-risk
{{- end }}

{{/* Labels that pick the predictor pods, in both modes (kserve: set through spec.predictor.labels). */}}
{{- define "credit-risk.selectorLabels" -}}
app.kubernetes.io/name: {{ include "credit-risk.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: predictor
{{- end }}

{{- define "credit-risk.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "credit-risk.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* ------------------------------------------------------------------------------------ image */}}

{{- define "credit-risk.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "credit-risk.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "credit-risk.imageTag" .) }}
{{- end }}
{{- end }}

{{/* ------------------------------------------------------------------------------------ mode */}}

{{- define "credit-risk.kserveServerless" -}}
{{- if and (eq .Values.mode "kserve") (has .Values.kserve.deploymentMode (list "Knative" "Serverless")) }}true{{ end }}
{{- end }}

{{/* The deployment-mode name the cluster's KServe release understands: 0.16 renamed RawDeployment to
     Standard and Serverless to Knative (the old names stay as deprecated aliases); 0.15 knows only the old
     ones and would silently fall back to the cluster default on a new one. */}}
{{- define "credit-risk.kserveDeploymentMode" -}}
{{- $serverless := eq (include "credit-risk.kserveServerless" .) "true" }}
{{- if semverCompare "<0.16.0-0" (printf "%s.0" .Values.kserve.version) }}
{{- ternary "Serverless" "RawDeployment" $serverless }}
{{- else }}
{{- ternary "Knative" "Standard" $serverless }}
{{- end }}
{{- end }}

{{/* Name of the container port: Knative accepts only http1 / h2c, so kserve mode uses http1. */}}
{{- define "credit-risk.portName" -}}
{{- if eq .Values.mode "kserve" }}http1{{ else }}http{{ end }}
{{- end }}

{{/* "true" when the V2 gRPC port is served and exposed: server.grpcPort > 0, except in KServe Knative mode,
     where Knative validates that a revision declares exactly one container port (knative.dev/serving
     pkg/apis/serving/k8s_validation.go: "more than one container port is set") and its queue-proxy
     forwards to that one port only. So in Knative mode the pod declares the HTTP port alone and the
     predictor gets --grpc-port 0: no listener that nothing routes to. */}}
{{- define "credit-risk.grpcEnabled" -}}
{{- if and (gt (int .Values.server.grpcPort) 0) (ne (include "credit-risk.kserveServerless" .) "true") }}true{{ end }}
{{- end }}

{{/* In-cluster gRPC target host:port (helm test pod, NOTES). kserve Standard mode: KServe's Service maps the
     first container port to 80 and keeps the number of every later port, so gRPC is <name>-predictor on
     server.grpcPort. */}}
{{- define "credit-risk.grpcTarget" -}}
{{- if eq .Values.mode "kserve" }}
{{- printf "%s-predictor.%s.svc.cluster.local:%d" (include "credit-risk.fullname" .) .Release.Namespace (int .Values.server.grpcPort) }}
{{- else }}
{{- printf "%s.%s.svc.cluster.local:%d" (include "credit-risk.fullname" .) .Release.Namespace (int .Values.service.grpcPort) }}
{{- end }}
{{- end }}

{{/* In-cluster URL of the predictor (used by the helm test pod and NOTES). */}}
{{- define "credit-risk.url" -}}
{{- if eq .Values.mode "kserve" }}
{{- printf "http://%s-predictor.%s.svc.cluster.local" (include "credit-risk.fullname" .) .Release.Namespace }}
{{- else }}
{{- printf "http://%s.%s.svc.cluster.local:%d" (include "credit-risk.fullname" .) .Release.Namespace (int .Values.service.port) }}
{{- end }}
{{- end }}

{{/* ------------------------------------------------------------------------------------ model */}}

{{/* Where the model comes from: "uri", "storage" or "volume" — exactly one. Fails early, with the fix in
     the message, on a combination that could never serve. */}}
{{- define "credit-risk.modelSource" -}}
{{- $m := .Values.model }}
{{- $set := list }}
{{- if $m.uri }}{{ $set = append $set "model.uri" }}{{ end }}
{{- if $m.storageUri }}{{ $set = append $set "model.storageUri" }}{{ end }}
{{- if ne $m.volume.type "none" }}{{ $set = append $set "model.volume.type" }}{{ end }}
{{- if gt (len $set) 1 }}
{{- fail (printf "the model comes from exactly one place; %s are all set: keep one (set the others to \"\" / none)" (join ", " $set)) }}
{{- else if not $set }}
{{- fail "no model: set model.storageUri (s3://, gs://, https://, pvc://), model.uri (models:/NAME/VERSION with mlflow.trackingUri, or a path in the image) or model.volume.type (hostPath or pvc)" }}
{{- end }}
{{- if $m.uri }}uri{{ else if $m.storageUri }}storage{{ else }}volume{{ end }}
{{- end }}

{{/* pvc://CLAIM/PATH -> dict claim, subPath; only for a pvc:// storageUri. */}}
{{- define "credit-risk.pvcStorage" -}}
{{- $rest := trimPrefix "pvc://" .Values.model.storageUri }}
{{- $parts := splitn "/" 2 $rest }}
{{- dict "claim" $parts._0 "subPath" (default "" $parts._1 | trimSuffix "/") | toYaml }}
{{- end }}

{{/* "true" when the chart must download the model before the predictor starts (deployment mode). */}}
{{- define "credit-risk.storageInitializer" -}}
{{- $uri := .Values.model.storageUri }}
{{- if and (eq .Values.mode "deployment") $uri (not (hasPrefix "pvc://" $uri)) }}true{{ end }}
{{- end }}

{{/* --model-uri of the predictor container. */}}
{{- define "credit-risk.modelUri" -}}
{{- $m := .Values.model }}
{{- $v := $m.volume }}
{{- $source := include "credit-risk.modelSource" . }}
{{- if eq $source "uri" }}
{{- if $m.file }}
{{- fail (printf "model.file %s applies to model.storageUri and model.volume; with model.uri name the file in model.uri itself" $m.file) }}
{{- end }}
{{- if and (regexMatch "^models:/[^/@]+@" $m.uri) (not $m.allowAlias) }}
{{- fail (printf "model.uri %s names an alias: each pod would resolve it when it starts, so an alias move reaches no pod until a restart and then pods serve mixed versions. Pin the version (models:/NAME/VERSION; k8s/rollout.sh resolves the alias and rolls the release out), or set model.allowAlias=true" $m.uri) }}
{{- end }}
{{- if and (hasPrefix "models:/" $m.uri) (not (include "credit-risk.hasTrackingUri" .)) }}
{{- fail (printf "model.uri %s is a registry URI: set mlflow.trackingUri (or an extraEnv MLFLOW_TRACKING_URI) so the predictor can resolve it" $m.uri) }}
{{- end }}
{{- $m.uri }}
{{- else }}
{{- if eq $v.type "hostPath" }}
{{- if not $v.hostPath.path }}{{ fail "model.volume.type is hostPath: set model.volume.hostPath.path (a folder of the node holding the .onnx model)" }}{{ end }}
{{- else if eq $v.type "pvc" }}
{{- if not $v.pvc.claimName }}{{ fail "model.volume.type is pvc: set model.volume.pvc.claimName (an existing PersistentVolumeClaim holding the .onnx model)" }}{{ end }}
{{- end }}
{{- $dir := ternary "/mnt/models" (trimSuffix "/" $v.mountPath) (eq $source "storage") }}
{{- if $m.file }}{{ printf "%s/%s" $dir $m.file }}{{ else }}{{ $dir }}{{ end }}
{{- end }}
{{- end }}

{{/* What the pods serve, as one string for the credit-risk.batibank.io/model-source pod annotation: a new
     model version changes the pod template, so it is a rollout, and `kubectl get pods -o yaml` says which. */}}
{{- define "credit-risk.modelSourceAnnotation" -}}
{{- $m := .Values.model }}
{{- $source := include "credit-risk.modelSource" . }}
{{- if eq $source "uri" }}{{ $m.uri }}
{{- else if eq $source "storage" }}{{ $m.storageUri }}{{ with $m.file }}#{{ . }}{{ end }}
{{- else if eq $m.volume.type "hostPath" }}hostPath:{{ $m.volume.hostPath.path }}{{ with $m.file }}/{{ . }}{{ end }}
{{- else }}pvc://{{ $m.volume.pvc.claimName }}{{ with $m.volume.pvc.subPath }}/{{ . }}{{ end }}{{ with $m.file }}#{{ . }}{{ end }}
{{- end }}
{{- end }}

{{/* "true" when the pod must reach the network beyond DNS to get its model. */}}
{{- define "credit-risk.modelNeedsEgress" -}}
{{- $m := .Values.model }}
{{- if or (hasPrefix "models:/" $m.uri) (and $m.storageUri (not (hasPrefix "pvc://" $m.storageUri))) }}true{{ end }}
{{- end }}

{{- define "credit-risk.hasTrackingUri" -}}
{{- if .Values.mlflow.trackingUri }}true{{ end }}
{{- range .Values.extraEnv }}{{ if eq .name "MLFLOW_TRACKING_URI" }}true{{ end }}{{ end }}
{{- end }}

{{- define "credit-risk.terminationGracePeriodSeconds" -}}
{{- $s := .Values.server }}
{{- $preStop := ternary 0 (int $s.preStopSleepSeconds) (eq (include "credit-risk.kserveServerless" .) "true") }}
{{- add $preStop (int $s.gracePeriodSeconds) (int $s.terminationMarginSeconds) }}
{{- end }}

{{/* ------------------------------------------------------------------------------------ pod */}}

{{/* The predictor container (same in both modes; kserve needs the name kserve-container). */}}
{{- define "credit-risk.container" -}}
{{- $s := .Values.server }}
{{- $serverless := eq (include "credit-risk.kserveServerless" .) "true" -}}
- name: {{ ternary "kserve-container" "predictor" (eq .Values.mode "kserve") }}
  image: {{ include "credit-risk.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    - --model-uri
    - {{ include "credit-risk.modelUri" . | quote }}
    - --model-name
    - {{ .Values.model.name | quote }}
    - --http-port
    - {{ $s.httpPort | int | quote }}
    - --grpc-port
    - {{ ternary ($s.grpcPort | int) 0 (eq (include "credit-risk.grpcEnabled" .) "true") | quote }}
    - --workers
    - {{ $s.workers | int | quote }}
    - --intra-op-threads
    - {{ $s.intraOpThreads | int | quote }}
    - --max-batch-rows
    - {{ $s.maxBatchRows | int | quote }}
    - --max-request-bytes
    - {{ $s.maxRequestBytes | int64 | quote }}
    - --drift-window-seconds
    - {{ $s.driftWindowSeconds | int | quote }}
    - --grace-period-seconds
    - {{ $s.gracePeriodSeconds | int | quote }}
    - --header-timeout-seconds
    - {{ $s.headerTimeoutSeconds | quote }}
    - --body-timeout-seconds
    - {{ $s.bodyTimeoutSeconds | quote }}
    - --keep-alive-seconds
    - {{ $s.keepAliveSeconds | quote }}
    - --max-connections
    - {{ $s.maxConnections | int | quote }}
    - --metrics-dir
    - /tmp/credit-risk-metrics
    {{- if not (kindIs "invalid" $s.threshold) }}
    - --threshold
    - {{ $s.threshold | quote }}
    {{- end }}
    {{- if $s.accessLog }}
    - --access-log
    - "true"
    {{- end }}
    {{- range $s.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  {{- $kserveStorage := and (eq .Values.mode "kserve") .Values.model.storageUri }}
  {{- if or .Values.mlflow.trackingUri .Values.extraEnv $kserveStorage }}
  env:
    {{- if $kserveStorage }}
    # KServe's webhook sees STORAGE_URI on a custom container and adds its storage initializer (or, for
    # pvc://, mounts the claim) at /mnt/models.
    - name: STORAGE_URI
      value: {{ .Values.model.storageUri | quote }}
    {{- end }}
    {{- if .Values.mlflow.trackingUri }}
    - name: MLFLOW_TRACKING_URI
      value: {{ .Values.mlflow.trackingUri | quote }}
    {{- end }}
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  {{- with .Values.envFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    # The HTTP port first: KServe's Service maps the first port to 80 (kserve mode).
    - name: {{ include "credit-risk.portName" . }}
      containerPort: {{ $s.httpPort }}
      protocol: TCP
    {{- if include "credit-risk.grpcEnabled" . }}
    # KServe gives a port whose name contains "grpc" or "h2c" appProtocol kubernetes.io/h2c on its Service.
    - name: grpc
      containerPort: {{ $s.grpcPort }}
      protocol: TCP
    {{- end }}
  {{- if not $serverless }}
  startupProbe:
    httpGet:
      path: /v2/health/live
      port: {{ $s.httpPort }}
    periodSeconds: {{ .Values.probes.startup.periodSeconds }}
    timeoutSeconds: {{ .Values.probes.startup.timeoutSeconds }}
    failureThreshold: {{ .Values.probes.startup.failureThreshold }}
  {{- end }}
  livenessProbe:
    httpGet:
      path: /v2/health/live
      port: {{ $s.httpPort }}
    periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
    timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
    failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
  readinessProbe:
    httpGet:
      path: /v2/health/ready
      port: {{ $s.httpPort }}
    periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
    timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
    failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
  {{- if and (not $serverless) (gt (int $s.preStopSleepSeconds) 0) }}
  lifecycle:
    preStop:
      exec:
        command: ["sleep", {{ $s.preStopSleepSeconds | int | quote }}]
  {{- end }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    {{- include "credit-risk.containerSecurityContext" . | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
    {{- if ne .Values.model.volume.type "none" }}
    - name: model
      mountPath: {{ .Values.model.volume.mountPath | quote }}
      readOnly: true
      {{- if and (eq .Values.model.volume.type "pvc") .Values.model.volume.pvc.subPath }}
      subPath: {{ .Values.model.volume.pvc.subPath | quote }}
      {{- end }}
    {{- else if and (eq .Values.mode "deployment") (hasPrefix "pvc://" .Values.model.storageUri) }}
    {{- $pvc := include "credit-risk.pvcStorage" . | fromYaml }}
    - name: model
      mountPath: /mnt/models
      readOnly: true
      {{- with $pvc.subPath }}
      subPath: {{ . | quote }}
      {{- end }}
    {{- else if include "credit-risk.storageInitializer" . }}
    - name: model-store
      mountPath: /mnt/models
      readOnly: true
    {{- end }}
    {{- with .Values.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* Deployment mode's storage initializer: the predictor image running KServe's downloader
     (python -m serving.storage, the kserve-storage library) into the model-store emptyDir, with
     KServe's environment variables, so the model arrives exactly as KServe's initializer would fetch it. */}}
{{- define "credit-risk.storageInitializerContainer" -}}
{{- $st := .Values.model.storage }}
{{- $uri := .Values.model.storageUri }}
- name: storage-initializer
  image: {{ include "credit-risk.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: ["python", "-m", "serving.storage"]
  args:
    - {{ $uri | quote }}
    - /mnt/models
  {{- $env := list }}
  {{- if hasPrefix "s3://" $uri }}
  {{- with $st.secretName }}
  {{- range $key := list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" }}
  {{- $env = append $env (dict "name" $key "valueFrom" (dict "secretKeyRef" (dict "name" $st.secretName "key" $key "optional" true))) }}
  {{- end }}
  {{- end }}
  {{- with $st.s3.endpoint }}{{ $env = append $env (dict "name" "AWS_ENDPOINT_URL" "value" .) }}{{ end }}
  {{- with $st.s3.region }}{{ $env = append $env (dict "name" "AWS_DEFAULT_REGION" "value" .) }}{{ end }}
  {{- $env = append $env (dict "name" "S3_VERIFY_SSL" "value" (ternary "1" "0" $st.s3.verifySsl)) }}
  {{- $env = append $env (dict "name" "S3_USER_VIRTUAL_BUCKET" "value" (ternary "true" "false" $st.s3.virtualHostedStyle)) }}
  {{- if $st.s3.caBundleConfigMap }}
  {{- $env = append $env (dict "name" "AWS_CA_BUNDLE" "value" (printf "/etc/credit-risk/storage-ca/%s" $st.s3.caBundleKey)) }}
  {{- end }}
  {{- else if and (hasPrefix "gs://" $uri) $st.secretName }}
  {{- $env = append $env (dict "name" "GOOGLE_APPLICATION_CREDENTIALS" "value" "/etc/credit-risk/storage-secret/gcloud-application-credentials.json") }}
  {{- end }}
  {{- with $env }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  resources:
    {{- toYaml $st.resources | nindent 4 }}
  securityContext:
    {{- include "credit-risk.containerSecurityContext" . | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
    - name: model-store
      mountPath: /mnt/models
    {{- if and (hasPrefix "gs://" $uri) $st.secretName }}
    - name: storage-secret
      mountPath: /etc/credit-risk/storage-secret
      readOnly: true
    {{- end }}
    {{- if and (hasPrefix "s3://" $uri) $st.s3.caBundleConfigMap }}
    - name: storage-ca
      mountPath: /etc/credit-risk/storage-ca
      readOnly: true
    {{- end }}
{{- end }}

{{- define "credit-risk.containerSecurityContext" -}}
{{- $sc := .Values.securityContext }}
runAsNonRoot: true
{{- if not (kindIs "invalid" $sc.runAsUser) }}
runAsUser: {{ $sc.runAsUser }}
{{- end }}
{{- if not (kindIs "invalid" $sc.runAsGroup) }}
runAsGroup: {{ $sc.runAsGroup }}
{{- end }}
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "credit-risk.podSecurityContext" -}}
{{- $sc := .Values.securityContext }}
runAsNonRoot: true
{{- if not (kindIs "invalid" $sc.runAsUser) }}
runAsUser: {{ $sc.runAsUser }}
{{- end }}
{{- if not (kindIs "invalid" $sc.runAsGroup) }}
runAsGroup: {{ $sc.runAsGroup }}
{{- end }}
{{- if not (kindIs "invalid" $sc.fsGroup) }}
fsGroup: {{ $sc.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
{{- end }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "credit-risk.volumes" -}}
- name: tmp
  emptyDir:
    {{- with .Values.tmp.medium }}
    medium: {{ . }}
    {{- end }}
    sizeLimit: {{ .Values.tmp.sizeLimit }}
{{- $v := .Values.model.volume }}
{{- if eq $v.type "hostPath" }}
- name: model
  hostPath:
    path: {{ $v.hostPath.path | quote }}
    type: {{ $v.hostPath.type }}
{{- else if eq $v.type "pvc" }}
- name: model
  persistentVolumeClaim:
    claimName: {{ $v.pvc.claimName | quote }}
    readOnly: true
{{- else if and (eq .Values.mode "deployment") (hasPrefix "pvc://" .Values.model.storageUri) }}
- name: model
  persistentVolumeClaim:
    claimName: {{ (include "credit-risk.pvcStorage" . | fromYaml).claim | quote }}
    readOnly: true
{{- else if include "credit-risk.storageInitializer" . }}
{{- $st := .Values.model.storage }}
- name: model-store
  emptyDir:
    sizeLimit: {{ $st.sizeLimit }}
{{- if and (hasPrefix "gs://" .Values.model.storageUri) $st.secretName }}
- name: storage-secret
  secret:
    secretName: {{ $st.secretName | quote }}
    items:
      - key: gcloud-application-credentials.json
        path: gcloud-application-credentials.json
{{- end }}
{{- if and (hasPrefix "s3://" .Values.model.storageUri) $st.s3.caBundleConfigMap }}
- name: storage-ca
  configMap:
    name: {{ $st.s3.caBundleConfigMap | quote }}
    items:
      - key: {{ $st.s3.caBundleKey | quote }}
        path: {{ $st.s3.caBundleKey | quote }}
{{- end }}
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod-level fields shared by the Deployment's pod template and the InferenceService predictor. */}}
{{- define "credit-risk.podSpecCommon" -}}
serviceAccountName: {{ include "credit-risk.serviceAccountName" . }}
automountServiceAccountToken: false
terminationGracePeriodSeconds: {{ include "credit-risk.terminationGracePeriodSeconds" . }}
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
{{- if .Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml .Values.topologySpreadConstraints | nindent 2 }}
{{- else if .Values.defaultTopologySpread }}
topologySpreadConstraints:
  {{- range $key, $when := dict "kubernetes.io/hostname" "DoNotSchedule" "topology.kubernetes.io/zone" "ScheduleAnyway" }}
  - topologyKey: {{ $key }}
    maxSkew: 1
    whenUnsatisfiable: {{ $when }}
    nodeTaintsPolicy: Honor
    labelSelector:
      matchLabels:
        {{- include "credit-risk.selectorLabels" $ | nindent 8 }}
    matchLabelKeys:
      - pod-template-hash
  {{- end }}
{{- end }}
{{- if or (include "credit-risk.storageInitializer" .) .Values.initContainers }}
initContainers:
  {{- if include "credit-risk.storageInitializer" . }}
  {{- include "credit-risk.storageInitializerContainer" . | nindent 2 }}
  {{- end }}
  {{- with .Values.initContainers }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
containers:
  {{- include "credit-risk.container" . | nindent 2 }}
volumes:
  {{- include "credit-risk.volumes" . | nindent 2 }}
{{- end }}

{{/* ------------------------------------------------------------------------------------ monitoring */}}

{{/* "true" when the Prometheus Operator kinds may be rendered (see monitoring.checkCRDs). */}}
{{- define "credit-risk.operatorCRDs" -}}
{{- if or (not .Values.monitoring.checkCRDs) (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") }}true{{ end }}
{{- end }}

{{/* Labels of the predictor pods: the selector labels win over podLabels of the same key. */}}
{{- define "credit-risk.podLabels" -}}
{{- $labels := include "credit-risk.selectorLabels" . | fromYaml }}
{{- $_ := set $labels "app.kubernetes.io/part-of" "credit-risk" }}
{{- toYaml (merge $labels (deepCopy .Values.podLabels)) }}
{{- end }}

{{/* "true" when the chart renders its ServiceMonitor (then no scrape annotations: one scrape per pod). */}}
{{- define "credit-risk.serviceMonitorRendered" -}}
{{- if and .Values.monitoring.serviceMonitor.enabled (include "credit-risk.operatorCRDs" .) (not (include "credit-risk.kserveServerless" .)) }}true{{ end }}
{{- end }}

{{/* Annotations of the predictor pods: the model they serve, deployment mode's scrape annotations, then
     podAnnotations (which win). */}}
{{- define "credit-risk.podAnnotations" -}}
{{- $a := dict "credit-risk.batibank.io/model-source" (include "credit-risk.modelSourceAnnotation" .) }}
{{- if and (eq .Values.mode "deployment") .Values.monitoring.podAnnotations (not (include "credit-risk.serviceMonitorRendered" .)) }}
{{- $_ := set $a "prometheus.io/scrape" "true" }}
{{- $_ := set $a "prometheus.io/port" (.Values.server.httpPort | int | toString) }}
{{- $_ := set $a "prometheus.io/path" "/metrics" }}
{{- end }}
{{- toYaml (merge (deepCopy .Values.podAnnotations) $a) }}
{{- end }}

{{/* Checks the schema cannot express; included by the workload templates (one of them always renders). */}}
{{- define "credit-risk.validate" -}}
{{- $a := .Values.autoscaling }}
{{- if and $a.enabled (gt (int $a.minReplicas) (int $a.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas (%d) is above autoscaling.maxReplicas (%d)" (int $a.minReplicas) (int $a.maxReplicas)) }}
{{- end }}
{{- if and (eq .Values.model.volume.type "hostPath") (eq (include "credit-risk.kserveServerless" .) "true") }}
{{- fail "model.volume.type hostPath is not supported in KServe Serverless mode (Knative refuses hostPath volumes): use a pvc or models:/ URI, or kserve.deploymentMode=Standard" }}
{{- end }}
{{- $_ := include "credit-risk.modelUri" . }}
{{- $st := .Values.model.storage }}
{{- if and (eq .Values.mode "kserve") (or $st.s3.endpoint $st.s3.region (not $st.s3.verifySsl) $st.s3.virtualHostedStyle $st.s3.caBundleConfigMap) }}
{{- fail "model.storage.s3.* applies to deployment mode only: in kserve mode KServe's storage initializer reads them from the annotations of the model.storage.secretName Secret (serving.kserve.io/s3-endpoint, s3-region, s3-usehttps, s3-verifyssl, s3-cabundle-configmap): set them there" }}
{{- end }}
{{- if and (eq .Values.mode "kserve") $st.secretName (not .Values.serviceAccount.create) }}
{{- fail (printf "model.storage.secretName %s reaches KServe's storage initializer through the ServiceAccount's secrets: with serviceAccount.create=false, list it on your ServiceAccount %s yourself and leave model.storage.secretName empty" $st.secretName (include "credit-risk.serviceAccountName" .)) }}
{{- end }}
{{- if and .Values.model.storageUri (not (regexMatch "^(s3|gs|https?|pvc)://[^/]+" .Values.model.storageUri)) }}
{{- fail (printf "model.storageUri %s: use s3://BUCKET/PATH, gs://BUCKET/PATH, https://HOST/PATH or pvc://CLAIM/PATH" .Values.model.storageUri) }}
{{- end }}
{{- $s := .Values.server }}
{{- if and (gt (int $s.grpcPort) 0) (eq (int $s.grpcPort) (int $s.httpPort)) }}
{{- fail (printf "server.grpcPort and server.httpPort are both %d: give gRPC its own port (or server.grpcPort=0 to turn it off)" (int $s.httpPort)) }}
{{- end }}
{{- if and (eq .Values.mode "deployment") (gt (int $s.grpcPort) 0) (eq (int .Values.service.grpcPort) (int .Values.service.port)) }}
{{- fail (printf "service.grpcPort and service.port are both %d: give the Service's gRPC port its own number" (int .Values.service.port)) }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and $pdb.enabled (eq (kindIs "invalid" $pdb.maxUnavailable) (kindIs "invalid" $pdb.minAvailable)) }}
{{- fail "podDisruptionBudget: set exactly one of maxUnavailable and minAvailable (the other null)" }}
{{- end }}
{{- end }}
