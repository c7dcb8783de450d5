{{/* Names ----------------------------------------------------------------------------------- */}}

{{- define "kubenova.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, 63 characters at most (DNS label). A release named like the chart
is not repeated ("kubenova", not "kubenova-kubenova").
*/}}
{{- define "kubenova.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kubenova.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubenova.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubenova.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Labels ---------------------------------------------------------------------------------- */}}

{{- define "kubenova.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubenova.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kubenova.labels" -}}
helm.sh/chart: {{ include "kubenova.chart" . }}
{{ include "kubenova.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubenova
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Images ---------------------------------------------------------------------------------- */}}

{{- define "kubenova.imageRef" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end }}

{{/*
The operator's image. With the embedded `qemu` driver the operator itself runs QEMU, so it runs
the launcher image (the operator plus qemu-system, qemu-img and genisoimage).
*/}}
{{- define "kubenova.operatorImage" -}}
{{- if eq .Values.driver "qemu" -}}
{{- include "kubenova.imageRef" (dict "root" . "image" .Values.launcherImage) -}}
{{- else -}}
{{- include "kubenova.imageRef" (dict "root" . "image" .Values.image) -}}
{{- end -}}
{{- end }}

{{- define "kubenova.launcherImage" -}}
{{- include "kubenova.imageRef" (dict "root" . "image" .Values.launcherImage) -}}
{{- end }}

{{/* Driver and ports ------------------------------------------------------------------------ */}}

{{- define "kubenova.validate" -}}
{{- if not (has .Values.driver (list "pod" "kubevirt" "qemu")) }}
{{- fail (printf "driver must be one of pod, kubevirt, qemu (got %q)" .Values.driver) }}
{{- end }}
{{- end }}

{{/* Compute hosts the operator registers itself: only the embedded `qemu` driver has any. */}}
{{- define "kubenova.embeddedHosts" -}}
{{- if eq .Values.driver "qemu" }}{{ int .Values.embedded.hosts }}{{ else }}0{{ end }}
{{- end }}

{{/* The Node (and Lease) names of the embedded hosts, `compute-0`... (the operator's naming). */}}
{{- define "kubenova.embeddedHostNames" -}}
{{- $names := list }}
{{- range $i := until (int (include "kubenova.embeddedHosts" .)) }}
{{- $names = append $names (printf "compute-%d" $i) }}
{{- end }}
{{- toJson $names }}
{{- end }}

{{/*
The namespace of the pod and kubevirt drivers' VM objects: "" when each goes to its Instance's
namespace (vmNamespace "*"), else one namespace (vmNamespace "", the default: the release's).
*/}}
{{- define "kubenova.vmNamespace" -}}
{{- if eq .Values.vmNamespace "*" }}{{ else }}{{ default .Release.Namespace .Values.vmNamespace }}{{ end }}
{{- end }}

{{- define "kubenova.webhookServiceName" -}}
{{- printf "%s-webhook" (include "kubenova.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The state directory's PersistentVolumeClaim: persistence.existingClaim, or the chart's. */}}
{{- define "kubenova.stateClaimName" -}}
{{- default (printf "%s-state" (include "kubenova.fullname" .) | trunc 63 | trimSuffix "-") .Values.persistence.existingClaim }}
{{- end }}

{{- define "kubenova.metricsServiceName" -}}
{{- printf "%s-metrics" (include "kubenova.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The pod and kubevirt drivers' rules on their VM objects (in a Role or the ClusterRole). */}}
{{- define "kubenova.vmRules" -}}
{{- if eq .Values.driver "pod" }}
# driver pod: each VM is a QEMU pod pinned to its host; the pod's log is the serial console.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, create, delete]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
{{- if eq .Values.pod.disk "pvc" }}
# disk pvc: each VM's disk is a PersistentVolumeClaim that outlives its pod (stop, start, reboot).
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, list, create, delete]
{{- end }}
{{- else if eq .Values.driver "kubevirt" }}
# driver kubevirt: each VM is a VirtualMachineInstance pinned to its host; the virt-launcher
# pod's log is the serial console.
- apiGroups: [kubevirt.io]
  resources: [virtualmachineinstances]
  verbs: [get, list, create, delete]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
{{- end }}
{{- end }}
