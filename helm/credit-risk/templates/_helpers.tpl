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
{{- if and (eq .Values.mode "kserve") (eq .Values.kserve.deploymentMode "Serverless") }}true{{ end }}
{{- end }}

{{/* Name of the container port: Knative accepts only http1 / h2c, so kserve mode uses http1. */}}
{{- define "credit-risk.portName" -}}
{{- if eq .Values.mode "kserve" }}http1{{ else }}http{{ end }}
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

{{/* --model-uri: model.uri if set, else the model volume's mount path (+ file). Fails early, with the
     fix in the message, on a combination that could never serve. */}}
{{- define "credit-risk.modelUri" -}}
{{- $m := .Values.model }}
{{- $v := $m.volume }}
{{- if eq $v.type "hostPath" }}
{{- if not $v.hostPath.path }}{{ fail "model.volume.type is hostPath: set model.volume.hostPath.path (a folder of the node holding the .onnx model)" }}{{ end }}
{{- else if eq $v.type "pvc" }}
{{- if not $v.pvc.claimName }}{{ fail "model.volume.type is pvc: set model.volume.pvc.claimName (an existing PersistentVolumeClaim holding the .onnx model)" }}{{ end }}
{{- end }}
{{- if $m.uri }}
{{- if and (hasPrefix "models:/" $m.uri) (not (include "credit-risk.hasTrackingUri" .)) }}
{{- fail (printf "model.uri %s is a registry URI: set mlflow.trackingUri (or an extraEnv MLFLOW_TRACKING_URI) so the predictor can resolve it" $m.uri) }}
{{- end }}
{{- $m.uri }}
{{- else if ne $v.type "none" }}
{{- if $v.file }}
{{- printf "%s/%s" (trimSuffix "/" $v.mountPath) $v.file }}
{{- else }}
{{- $v.mountPath }}
{{- end }}
{{- else }}
{{- fail "no model: set model.uri (models:/NAME@ALIAS with mlflow.trackingUri, or a path in the image) or model.volume.type (hostPath or pvc)" }}
{{- end }}
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
  {{- if or .Values.mlflow.trackingUri .Values.extraEnv }}
  env:
    {{- if .Values.mlflow.trackingUri }}
    - name: MLFLOW_TRACKING_URI
      value: {{ .Values.mlflow.trackingUri | quote }}
    {{- end }}
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  ports:
    - name: {{ include "credit-risk.portName" . }}
      containerPort: {{ $s.httpPort }}
      protocol: TCP
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
    {{- end }}
{{- end }}

{{- define "credit-risk.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "credit-risk.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
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
{{- with .Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
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
{{- $_ := set $labels "app.kubernetes.io/version" (include "credit-risk.imageTag" . | trunc 63 | trimSuffix "-") }}
{{- $_ := set $labels "app.kubernetes.io/part-of" "credit-risk" }}
{{- toYaml (merge $labels (deepCopy .Values.podLabels)) }}
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
{{- end }}
