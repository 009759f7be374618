{{/*
Names, labels and small values every template shares. The objects keep the fixed names of
`driftgate manifests` (src/install/mod.rs), whatever the release is called.
*/}}

{{/* The label every object carries and the StatefulSet selects on. */}}
{{- define "driftgate.selectorLabels" -}}
app.kubernetes.io/name: driftgate
{{- end -}}

{{/* The labels of every object: the selector label and `commonLabels`. */}}
{{- define "driftgate.labels" -}}
{{- toYaml (merge (dict "app.kubernetes.io/name" "driftgate") .Values.commonLabels) -}}
{{- end -}}

{{/* metadata of a namespaced object: include "driftgate.meta" (list $ NAME). */}}
{{- define "driftgate.meta" -}}
{{- $root := index . 0 -}}
name: {{ index . 1 }}
namespace: {{ $root.Release.Namespace }}
labels:
  {{- include "driftgate.labels" $root | nindent 2 }}
{{- end -}}

{{/* metadata of a cluster-scoped object: include "driftgate.clusterMeta" (list $ NAME). */}}
{{- define "driftgate.clusterMeta" -}}
{{- $root := index . 0 -}}
name: {{ index . 1 }}
labels:
  {{- include "driftgate.labels" $root | nindent 2 }}
{{- end -}}

{{/* The container image: repository@digest, else repository:tag (the chart's appVersion). */}}
{{- define "driftgate.image" -}}
{{- $image := .Values.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Secret with tls.crt and tls.key that driftgate serves. */}}
{{- define "driftgate.tlsSecret" -}}
{{- if eq .Values.certificates.source "existingSecret" -}}
{{- .Values.certificates.existingSecret -}}
{{- else -}}
driftgate-tls
{{- end -}}
{{- end -}}

{{/* The ConfigMap with the policy files. */}}
{{- define "driftgate.policiesConfigMap" -}}
{{- default "driftgate-policies" .Values.policies.existingConfigMap -}}
{{- end -}}

{{/* A CEL string literal (src/install/webhooks.rs, cel_string). */}}
{{- define "driftgate.cel" -}}
'{{ . | replace `\` `\\` | replace `'` `\'` | replace "\n" `\n` | replace "\r" `\r` | replace "\t" `\t` }}'
{{- end -}}

{{/* A CEL list of string literals. */}}
{{- define "driftgate.celList" -}}
{{- $items := list -}}
{{- range . -}}
{{- $items = append $items (include "driftgate.cel" .) -}}
{{- end -}}
[{{ join ", " $items }}]
{{- end -}}
