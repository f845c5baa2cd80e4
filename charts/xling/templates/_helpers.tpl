{{- define "xling.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "xling.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "xling.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "xling.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "xling.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "xling.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component (sidecar, sidecar-query, train, evaluate). */}}
{{- define "xling.selectorLabels" -}}
app.kubernetes.io/name: {{ include "xling.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "xling.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "xling.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "xling.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The sidecars to run, as a list of {component, suffix, model, queryModel}:
one serving both task types, or with sidecar.split a passage and a query one.
*/}}
{{- define "xling.sidecars" -}}
{{- $m := .Values.model }}
{{- $dir := printf "%s/%s" $m.mountPath $m.dir }}
{{- if .Values.sidecar.split }}
{{- if not $m.queryDir }}{{ fail "sidecar.split needs model.queryDir: the query Deployment serves it" }}{{ end }}
- {component: sidecar-passage, suffix: "-passage", model: {{ $dir | quote }}, queryModel: ""}
- {component: sidecar-query, suffix: "-query", model: {{ printf "%s/%s" $m.mountPath $m.queryDir | quote }}, queryModel: ""}
{{- else }}
- {component: sidecar, suffix: "", model: {{ $dir | quote }}, queryModel: {{ ternary (printf "%s/%s" $m.mountPath $m.queryDir) "" (ne $m.queryDir "") | quote }}}
{{- end }}
{{- end }}

{{- define "xling.modelClaim" -}}
{{- if .Values.model.persistence.existingClaim }}
{{- .Values.model.persistence.existingClaim }}
{{- else if .Values.model.persistence.create }}
{{- printf "%s-models" (include "xling.fullname" .) }}
{{- end }}
{{- end }}

{{/* Volumes every xling pod has: the models, and a writable /tmp. */}}
{{- define "xling.volumes" -}}
- name: models
{{- with include "xling.modelClaim" . }}
  persistentVolumeClaim:
    claimName: {{ . }}
{{- else }}
  emptyDir: {}
{{- end }}
- name: tmp
  emptyDir: {}
{{- end }}

{{- define "xling.dataVolume" -}}
{{- if not .Values.data.existingClaim }}{{ fail "the training and evaluation Jobs need data.existingClaim: a volume holding the datasets" }}{{ end -}}
- name: data
  persistentVolumeClaim:
    claimName: {{ .Values.data.existingClaim }}
    readOnly: true
{{- end }}

{{- define "xling.podSecurity" -}}
serviceAccountName: {{ include "xling.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
What every xling container shares: image, security context, env, /tmp and
models. Arguments: root, readOnlyModels, data (mount the datasets), weaviate
(give it Weaviate's API key).
*/}}
{{- define "xling.container" -}}
image: {{ include "xling.image" .root }}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
securityContext:
  {{- toYaml .root.Values.securityContext | nindent 2 }}
env:
  - name: XLING_LOG_LEVEL
    value: {{ .root.Values.logLevel | quote }}
  - name: XLING_LOG_FORMAT
    value: json
{{- with and .weaviate .root.Values.weaviate.apiKeySecret }}
  - name: XLING_WEAVIATE_API_KEY
    valueFrom:
      secretKeyRef: {name: {{ . }}, key: api-key}
{{- end }}
{{- with .env }}
  {{- toYaml . | nindent 2 }}
{{- end }}
volumeMounts:
  - {name: tmp, mountPath: /tmp}
  - {name: models, mountPath: {{ .root.Values.model.mountPath }}, readOnly: {{ .readOnlyModels }}}
{{- if .data }}
  - {name: data, mountPath: {{ .root.Values.data.mountPath }}, readOnly: true}
{{- end }}
{{- end }}

{{/*
The training pod: xling prepare (init container), then xling train, which
checkpoints into the model volume and resumes when restarted. Arguments:
root, train (.Values.train), container (its name), and for a distributed
run port (the rendezvous port's name), env (torchrun's variables, where no
operator sets them) and subdomain (the headless Service).
*/}}
{{- define "xling.trainPod" -}}
{{- $root := .root }}
{{- $t := .train }}
{{- $mp := $root.Values.model.mountPath }}
{{- $dp := $root.Values.data.mountPath -}}
metadata:
  labels:
    {{- include "xling.selectorLabels" (dict "root" $root "component" "train") | nindent 4 }}
spec:
  {{- include "xling.podSecurity" $root | nindent 2 }}
  {{- with .subdomain }}
  subdomain: {{ . }}
  {{- end }}
  # OnFailure restarts the container in the same pod; --resume then
  # continues from the last checkpoint on the model volume.
  restartPolicy: OnFailure
  initContainers:
    - name: prepare
      {{- include "xling.container" (dict "root" $root "readOnlyModels" true "data" true) | nindent 6 }}
      args:
        - prepare
        - --out=/tmp/pairs
        {{- range $t.sources }}
        - {{ printf "%s/%s" $dp . }}
        {{- end }}
  containers:
    - name: {{ .container }}
      {{- include "xling.container" (dict "root" $root "readOnlyModels" false "data" true "env" .env) | nindent 6 }}
      args:
        - train
        - --data=/tmp/pairs
        - --out={{ $mp }}/{{ $t.out }}
        - --resume
        - --batch-mode={{ $t.batchMode }}
        - --alpha={{ $t.alpha }}
        - --batch-size={{ $t.batchSize }}
        - --steps={{ $t.steps }}
        - --lr={{ $t.lr }}
        - --size={{ $t.size }}
        - --seed={{ $t.seed }}
        - --threads={{ $t.threads }}
        {{- if .port }}
        - --dist-timeout={{ $t.distributed.timeout }}
      ports:
        - {name: {{ .port }}, containerPort: {{ $t.distributed.port }}, protocol: TCP}
        {{- end }}
      resources:
        {{- toYaml $t.resources | nindent 8 }}
  volumes:
    {{- include "xling.volumes" $root | nindent 4 }}
    {{- include "xling.dataVolume" $root | nindent 4 }}
{{- end }}
