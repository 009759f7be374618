{{/*
The certificates of `certificates.source: helm`, and the caBundle the webhook configurations
carry whatever the source.

With `helm` the CA (ECDSA P-256, Secret driftgate-ca) is made once, at install, and looked up and
kept at every upgrade; the serving certificate it signs is made again at every render. The
caBundle is that CA, so it stays the same across upgrades: the kube-apiserver trusts the old
serving certificate and the new one alike, and there is no moment where it distrusts the
certificate a replica serves (driftgate reloads driftgate-tls when the kubelet updates it).
*/}}

{{/*
The CA and serving certificate of `certificates.source: helm`, made once a render (the Secrets
and the webhook configurations must agree). JSON {caCrt, caKey, tlsCrt, tlsKey}.
*/}}
{{- define "driftgate.generatedCertificates" -}}
{{- if not (hasKey . "driftgateGeneratedCertificates") -}}
{{- $ns := .Release.Namespace -}}
{{- $settings := .Values.certificates.helm -}}
{{- $ca := dict -}}
{{- $stored := lookup "v1" "Secret" $ns "driftgate-ca" -}}
{{- $data := dig "data" dict $stored -}}
{{- if and (hasKey $data "ca.crt") (hasKey $data "ca.key") -}}
{{- $ca = buildCustomCert (index $data "ca.crt") (index $data "ca.key") -}}
{{- else -}}
{{- $ca = genCAWithKey "driftgate CA" (int $settings.caValidityDays) (genPrivateKey "ecdsa") -}}
{{- end -}}
{{- $dns := list "driftgate" (printf "driftgate.%s" $ns) (printf "driftgate.%s.svc" $ns) (printf "driftgate.%s.svc.cluster.local" $ns) -}}
{{- $ips := list -}}
{{- with .Values.webhook.url -}}
{{- $host := (urlParse .).hostname -}}
{{- if or (regexMatch "^[0-9.]+$" $host) (contains ":" $host) -}}
{{- $ips = append $ips $host -}}
{{- else -}}
{{- $dns = append $dns $host -}}
{{- end -}}
{{- end -}}
{{- $serving := genSignedCertWithKey (printf "driftgate.%s.svc" $ns) $ips (uniq $dns) (int $settings.validityDays) $ca (genPrivateKey "ecdsa") -}}
{{- $_ := set . "driftgateGeneratedCertificates" (toJson (dict "caCrt" $ca.Cert "caKey" $ca.Key "tlsCrt" $serving.Cert "tlsKey" $serving.Key)) -}}
{{- end -}}
{{- get . "driftgateGeneratedCertificates" -}}
{{- end -}}

{{/* PEM of the CA the webhook configurations trust; empty when cert-manager injects it. */}}
{{- define "driftgate.caBundle" -}}
{{- $source := .Values.certificates.source -}}
{{- if eq $source "helm" -}}
{{- (include "driftgate.generatedCertificates" . | fromJson).caCrt -}}
{{- else if eq $source "existingSecret" -}}
{{- required "certificates.caBundle: give the PEM of the CA that signed the existing Secret's certificate (certificates.source existingSecret)" .Values.certificates.caBundle -}}
{{- end -}}
{{- end -}}
