{{/*
Names and labels shared by every template.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "smq.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every object name: fullnameOverride, else the release name when it already holds the chart
name (`helm install smq` gives `smq`), else <release>-<chart>. 40 characters at most, so that names with
the longest suffixes (Service <fullname>-operator-metrics, the etcd StatefulSet's pods and their
controller-revision-hash labels) stay within the 63 characters of a DNS label.
*/}}
{{- define "smq.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* helm.sh/chart: name-version. */}}
{{- define "smq.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Kubernetes' recommended labels (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/)
for one component: `include "smq.labels" (list . "operator")`.
*/}}
{{- define "smq.labels" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
helm.sh/chart: {{ include "smq.chart" $root }}
{{ include "smq.selectorLabels" (list $root $component) }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: smq
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
{{- end -}}

{{/*
The labels that select one component's pods; never changed after install (selectors are immutable).
app.kubernetes.io/name is the application: smq for the brokers, smq-operator for the operator, etcd for the
etcd, so that no selector of one matches the pods of another (the brokers' StatefulSet, made by the
operator, and the chart's pods share the instance label when the SmqCluster is named after the release).
*/}}
{{- define "smq.selectorLabels" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $app := include "smq.name" $root -}}
{{- if eq $component "operator" -}}
{{- $app = printf "%s-operator" $app -}}
{{- else if eq $component "etcd" -}}
{{- $app = "etcd" -}}
{{- end -}}
app.kubernetes.io/name: {{ $app }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ $component }}
{{- end -}}

{{/* The smq image, repository:tag (tag default: appVersion). */}}
{{- define "smq.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "smq.operator.fullname" -}}
{{- printf "%s-operator" (include "smq.fullname" .) -}}
{{- end -}}

{{- define "smq.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "smq.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- required "operator.serviceAccount.name: name the ServiceAccount to use when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The chart's SmqCluster: cluster.name, default the full name. */}}
{{- define "smq.cluster.name" -}}
{{- default (include "smq.fullname" .) .Values.cluster.name -}}
{{- end -}}

{{/*
Objects the operator creates for the chart's SmqCluster, as NOTES.txt names them: the client Service is
named after the SmqCluster, the API token Secret <name>-api-token (key `token`) unless cluster.apiToken names
one.
*/}}
{{- define "smq.cluster.serviceName" -}}
{{- include "smq.cluster.name" . -}}
{{- end -}}

{{- define "smq.cluster.apiTokenSecret" -}}
{{- if .Values.cluster.apiToken -}}
{{- .Values.cluster.apiToken.name -}}
{{- else -}}
{{- printf "%s-api-token" (include "smq.cluster.name" .) -}}
{{- end -}}
{{- end -}}

{{- define "smq.cluster.apiTokenKey" -}}
{{- if .Values.cluster.apiToken -}}
{{- .Values.cluster.apiToken.key -}}
{{- else -}}
token
{{- end -}}
{{- end -}}

{{- define "smq.etcd.fullname" -}}
{{- printf "%s-etcd" (include "smq.fullname" .) -}}
{{- end -}}

{{- define "smq.etcd.headlessName" -}}
{{- printf "%s-etcd-headless" (include "smq.fullname" .) -}}
{{- end -}}

{{/*
The etcd endpoints of the chart's SmqCluster, as a YAML list: cluster.etcd.endpoints, else one per member of
the chart's etcd through its headless Service. The names are short (`<pod>.<service>:2379`): the brokers run
in the release namespace, whose DNS search path completes them, so the same manifests fit any namespace.
*/}}
{{- define "smq.cluster.etcdEndpoints" -}}
{{- if .Values.cluster.etcd.endpoints -}}
{{- toYaml .Values.cluster.etcd.endpoints -}}
{{- else if .Values.etcd.enabled -}}
{{- $etcd := include "smq.etcd.fullname" . -}}
{{- $headless := include "smq.etcd.headlessName" . -}}
{{- range $i := until (int .Values.etcd.replicas) }}
- {{ printf "%s-%d.%s:2379" $etcd $i $headless }}
{{- end -}}
{{- else -}}
{{- fail "cluster.etcd.endpoints: an SmqCluster needs etcd; with etcd.enabled=false, list your etcd's endpoints (host:port) there, or set cluster.enabled=false" -}}
{{- end -}}
{{- end -}}
