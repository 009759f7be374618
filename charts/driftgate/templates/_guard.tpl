{{/*
The tamper guard's expressions, as src/install/guard.rs writes them: who may change driftgate's
install (every policy's GitOps writers and break-glass groups), and the one change anyone else
may make (cert-manager's CA injector writing the webhooks' caBundle and nothing else).
*/}}

{{/* The CEL that is true for the GitOps writers and break-glass members of any policy. */}}
{{- define "driftgate.guardAllowed" -}}
{{- $users := list -}}
{{- $prefixes := list -}}
{{- $groups := list -}}
{{- range $p := include "driftgate.policies" . | fromJsonArray -}}
{{- range $sa := $p.serviceAccounts -}}
{{- if eq $sa.name "*" -}}
{{- $prefixes = append $prefixes (printf "system:serviceaccount:%s:" $sa.namespace) -}}
{{- else -}}
{{- $users = append $users (printf "system:serviceaccount:%s:%s" $sa.namespace $sa.name) -}}
{{- end -}}
{{- end -}}
{{- $users = concat $users $p.users -}}
{{- $groups = concat $groups $p.groups $p.breakGlass -}}
{{- end -}}
{{- $terms := list (printf "request.userInfo.username in %s" (include "driftgate.celList" (uniq $users))) -}}
{{- range $prefix := uniq $prefixes -}}
{{- $terms = append $terms (printf "request.userInfo.username.startsWith(%s)" (include "driftgate.cel" $prefix)) -}}
{{- end -}}
{{- if $groups -}}
{{- $terms = append $terms (printf "(has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in %s))" (include "driftgate.celList" (uniq $groups))) -}}
{{- end -}}
{{- join " || " $terms -}}
{{- end -}}

{{/* True only for the CA injector changing nothing but the webhooks' caBundle. */}}
{{- define "driftgate.guardCaBundleOnly" -}}
{{- $same := list -}}
{{- range $f := list "rules" "failurePolicy" "matchPolicy" "namespaceSelector" "objectSelector" "matchConditions" "sideEffects" "timeoutSeconds" "admissionReviewVersions" "reinvocationPolicy" "clientConfig.service" "clientConfig.url" -}}
{{- $same = append $same (printf "(has(o.%s) == has(w.%s) && (!has(w.%s) || o.%s == w.%s))" $f $f $f $f $f) -}}
{{- end -}}
request.userInfo.username == {{ include "driftgate.cel" "system:serviceaccount:cert-manager:cert-manager-cainjector" }} && request.operation == 'UPDATE' && request.resource.resource.endsWith('webhookconfigurations') && object.webhooks.size() == oldObject.webhooks.size() && object.webhooks.all(w, oldObject.webhooks.exists(o, o.name == w.name && {{ join " && " $same }}))
{{- end -}}
