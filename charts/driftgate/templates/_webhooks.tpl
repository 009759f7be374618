{{/*
The webhook configurations derived from the policies, entry for entry what
src/install/webhooks.rs derives (tests/helm.rs renders both for every policy set of the
repository and compares them): a validating webhook a policy calling /validate/<policy>, a
break-glass twin that fails open for a policy that fails closed, a mutating webhook for a policy
that repairs or stamps provenance; rules for exactly the protected groups, kinds and operations,
matchConditions that keep the GitOps writers in the kube-apiserver, and a namespaceSelector on
the immutable kubernetes.io/metadata.name label that always skips kube-system and the release
namespace.
*/}}

{{/* The plural resource name of a kind, as CRDs conventionally name it (webhooks.rs, plural). */}}
{{- define "driftgate.plural" -}}
{{- $lower := lower . -}}
{{- if regexMatch "^.*[^aeiou]y$" $lower -}}
{{- regexReplaceAll "y$" $lower "ies" -}}
{{- else if or (regexMatch "[sxz]$" $lower) (hasSuffix "ch" $lower) (hasSuffix "sh" $lower) -}}
{{- $lower -}}es
{{- else -}}
{{- $lower -}}s
{{- end -}}
{{- end -}}

{{/*
The webhook resources of one protected group (webhooks.rs, rule_resources): a whole group is
every resource and its scale subresource; kinds become plurals; plural resources come with
their scale subresource.
JSON list.
*/}}
{{- define "driftgate.ruleResources" -}}
{{- $out := list -}}
{{- if or (not (or .kinds .resources)) (has "*" (concat .kinds .resources)) -}}
{{- $out = list "*" "*/scale" -}}
{{- else -}}
{{- range $kind := .kinds -}}
{{- $out = append $out (include "driftgate.plural" $kind) -}}
{{- end -}}
{{- range $resource := .resources -}}
{{- $out = append $out $resource -}}
{{- if not (contains "/" $resource) -}}
{{- $out = append $out (printf "%s/scale" $resource) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson (uniq $out) -}}
{{- end -}}

{{/*
A policy's rules for one webhook (webhooks.rs, policy_rules): each resource rule with its
operations among `allowed`, subresources left out when `objectsOnly`; groups with the same
resources and operations share a rule. Argument: dict policy, allowed, objectsOnly. JSON list.
*/}}
{{- define "driftgate.rules" -}}
{{- $merged := list -}}
{{- range $r := .policy.resources -}}
{{- $operations := list -}}
{{- range $op := $.allowed -}}
{{- if or (not $r.operations) (has $op $r.operations) -}}
{{- $operations = append $operations $op -}}
{{- end -}}
{{- end -}}
{{- $resources := list -}}
{{- range $res := include "driftgate.ruleResources" $r | fromJsonArray -}}
{{- if not (and $.objectsOnly (contains "/" $res)) -}}
{{- $resources = append $resources $res -}}
{{- end -}}
{{- end -}}
{{- if and $operations $resources -}}
{{- $found := false -}}
{{- range $m := $merged -}}
{{- if and (not $found) (eq (toJson $m.resources) (toJson $resources)) (eq (toJson $m.operations) (toJson $operations)) -}}
{{- $found = true -}}
{{- if not (has $r.group $m.apiGroups) -}}
{{- $_ := set $m "apiGroups" (append $m.apiGroups $r.group) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not $found -}}
{{- $merged = append $merged (dict "apiGroups" (list $r.group) "apiVersions" (list "*") "operations" $operations "resources" $resources "scope" "*") -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $merged -}}
{{- end -}}

{{/*
The matchConditions that keep a policy's GitOps writers away from its webhook (webhooks.rs,
gitops_match_conditions). JSON list.
*/}}
{{- define "driftgate.gitopsConditions" -}}
{{- $conditions := list -}}
{{- if .serviceAccounts -}}
{{- $exact := list -}}
{{- $prefixes := list -}}
{{- range $sa := .serviceAccounts -}}
{{- if eq $sa.name "*" -}}
{{- $prefixes = append $prefixes (printf "system:serviceaccount:%s:" $sa.namespace) -}}
{{- else -}}
{{- $exact = append $exact (printf "system:serviceaccount:%s:%s" $sa.namespace $sa.name) -}}
{{- end -}}
{{- end -}}
{{- $terms := list -}}
{{- if $exact -}}
{{- $terms = append $terms (printf "request.userInfo.username in %s" (include "driftgate.celList" $exact)) -}}
{{- end -}}
{{- range $prefix := $prefixes -}}
{{- $terms = append $terms (printf "request.userInfo.username.startsWith(%s)" (include "driftgate.cel" $prefix)) -}}
{{- end -}}
{{- $conditions = append $conditions (dict "name" "not-gitops-service-account" "expression" (printf "!(%s)" (join " || " $terms))) -}}
{{- end -}}
{{- if .users -}}
{{- $conditions = append $conditions (dict "name" "not-gitops-user" "expression" (printf "!(request.userInfo.username in %s)" (include "driftgate.celList" .users))) -}}
{{- end -}}
{{- if .groups -}}
{{- $conditions = append $conditions (dict "name" "not-gitops-group" "expression" (printf "!(has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in %s))" (include "driftgate.celList" .groups))) -}}
{{- end -}}
{{- toJson $conditions -}}
{{- end -}}

{{/* A DNS label from a policy name (webhooks.rs, dns_label). */}}
{{- define "driftgate.dnsLabel" -}}
{{- $label := regexReplaceAll "[^a-z0-9]" (lower .) "-" | trimAll "-" | trunc 63 -}}
{{- default "policy" (regexReplaceAll "-+$" $label "") -}}
{{- end -}}

{{/*
`<policy>.<suffix>` for each policy, unique where two names map to one label (webhooks.rs,
webhook_names). Argument: dict names, suffix. JSON list.
*/}}
{{- define "driftgate.webhookNames" -}}
{{- $labels := list -}}
{{- range $name := .names -}}
{{- $base := include "driftgate.dnsLabel" $name -}}
{{- $label := $base -}}
{{- range $n := until (len $labels) -}}
{{- if has $label $labels -}}
{{- $tail := printf "-%d" (add $n 2) -}}
{{- $label = print (trunc (int (sub 63 (len $tail))) $base) $tail -}}
{{- end -}}
{{- end -}}
{{- $labels = append $labels $label -}}
{{- end -}}
{{- $names := list -}}
{{- range $label := $labels -}}
{{- $names = append $names (printf "%s.%s" $label $.suffix) -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/* `<policy>-break-glass.<suffix>`, its first label within 63 characters. */}}
{{- define "driftgate.breakGlassName" -}}
{{- $parts := splitn "." 2 . -}}
{{- printf "%s-break-glass.%s" (regexReplaceAll "-+$" (trunc 51 $parts._0) "") (default "" $parts._1) -}}
{{- end -}}

{{/* Namespaces no webhook is ever called for: kube-system, the release namespace, the excluded. */}}
{{- define "driftgate.neverProtected" -}}
{{- toJson (uniq (concat (list "kube-system" .Release.Namespace) .Values.webhook.excludeNamespaces)) -}}
{{- end -}}

{{/* A policy's namespaceSelector. Argument: dict root, policy. */}}
{{- define "driftgate.namespaceSelector" -}}
{{- $never := include "driftgate.neverProtected" .root | fromJsonArray -}}
{{- $expressions := list (dict "key" "kubernetes.io/metadata.name" "operator" "NotIn" "values" (uniq (concat $never .policy.exclude))) -}}
{{- if .policy.include -}}
{{- $expressions = append $expressions (dict "key" "kubernetes.io/metadata.name" "operator" "In" "values" (uniq .policy.include)) -}}
{{- end -}}
{{- toJson (dict "matchExpressions" $expressions) -}}
{{- end -}}

{{/*
How the kube-apiserver calls driftgate for `path`: the Service, or `webhook.url`; the caBundle
unless cert-manager's CA injector fills it in. Argument: dict root, path.
*/}}
{{- define "driftgate.clientConfig" -}}
{{- $root := .root -}}
{{- $config := dict -}}
{{- with $root.Values.webhook.url -}}
{{- $_ := set $config "url" (print (regexReplaceAll "/+$" . "") $.path) -}}
{{- else -}}
{{- $_ := set $config "service" (dict "namespace" $root.Release.Namespace "name" "driftgate" "path" .path "port" 443) -}}
{{- end -}}
{{- with include "driftgate.caBundle" $root -}}
{{- $_ := set $config "caBundle" (b64enc .) -}}
{{- end -}}
{{- toJson $config -}}
{{- end -}}

{{/* The path of a policy's endpoint, the name percent-encoded. Argument: list endpoint, name. */}}
{{- define "driftgate.policyPath" -}}
/{{ index . 0 }}/{{ urlquery (index . 1) | replace "+" "%20" }}
{{- end -}}

{{/* The validating and mutating webhooks. JSON {validating, mutating}. */}}
{{- define "driftgate.webhooks" -}}
{{- $root := . -}}
{{- $failure := .Values.webhook.failurePolicy -}}
{{- $timeout := .Values.webhook.timeoutSeconds -}}
{{- $policies := include "driftgate.policies" . | fromJsonArray -}}
{{- $names := list -}}
{{- range $p := $policies -}}
{{- $names = append $names $p.name -}}
{{- end -}}
{{- $validateNames := include "driftgate.webhookNames" (dict "names" $names "suffix" "validate.driftgate.dev") | fromJsonArray -}}
{{- $validating := list -}}
{{- range $i, $p := $policies -}}
{{- $name := index $validateNames $i -}}
{{- $conditions := include "driftgate.gitopsConditions" $p | fromJsonArray -}}
{{- $failurePolicy := get $failure $p.mode -}}
{{- $hook := dict "admissionReviewVersions" (list "v1") "clientConfig" (include "driftgate.clientConfig" (dict "root" $root "path" (include "driftgate.policyPath" (list "validate" $p.name))) | fromJson) "rules" (include "driftgate.rules" (dict "policy" $p "allowed" (list "CREATE" "UPDATE" "DELETE") "objectsOnly" false) | fromJsonArray) "namespaceSelector" (include "driftgate.namespaceSelector" (dict "root" $root "policy" $p) | fromJson) "objectSelector" (dict) "matchPolicy" "Equivalent" "sideEffects" "NoneOnDryRun" "timeoutSeconds" $timeout -}}
{{- if or (ne $failurePolicy "Fail") (not $p.breakGlass) -}}
{{- $one := merge (dict "name" $name "failurePolicy" $failurePolicy) $hook -}}
{{- if $conditions -}}
{{- $_ := set $one "matchConditions" $conditions -}}
{{- end -}}
{{- $validating = append $validating $one -}}
{{- else -}}
{{- /* Break-glass members go to an entry of their own that fails open. */ -}}
{{- $member := printf "has(request.userInfo.groups) && request.userInfo.groups.exists(g, g in %s)" (include "driftgate.celList" $p.breakGlass) -}}
{{- $everyone := append $conditions (dict "name" "not-break-glass" "expression" (printf "!(%s)" $member)) -}}
{{- $members := append $conditions (dict "name" "break-glass" "expression" $member) -}}
{{- $validating = append $validating (merge (dict "name" $name "failurePolicy" "Fail" "matchConditions" $everyone) (deepCopy $hook)) -}}
{{- $validating = append $validating (merge (dict "name" (include "driftgate.breakGlassName" $name) "failurePolicy" "Ignore" "matchConditions" $members) (deepCopy $hook)) -}}
{{- end -}}
{{- end -}}
{{- /* Every BreakGlassGrant write in the release namespace, failing closed (install/grants.rs). */ -}}
{{- $grantRule := dict "apiGroups" (list "driftgate.dev") "apiVersions" (list "*") "operations" (list "CREATE" "UPDATE" "DELETE") "resources" (list "breakglassgrants") "scope" "Namespaced" -}}
{{- $grantNamespaces := dict "matchExpressions" (list (dict "key" "kubernetes.io/metadata.name" "operator" "In" "values" (list $root.Release.Namespace))) -}}
{{- $validating = append $validating (dict "name" "breakglassgrants.driftgate.dev" "admissionReviewVersions" (list "v1") "clientConfig" (include "driftgate.clientConfig" (dict "root" $root "path" "/grants") | fromJson) "rules" (list $grantRule) "namespaceSelector" $grantNamespaces "objectSelector" (dict) "matchPolicy" "Equivalent" "failurePolicy" "Fail" "sideEffects" "NoneOnDryRun" "timeoutSeconds" $timeout) -}}
{{- $mutated := list -}}
{{- $mutatedNames := list -}}
{{- range $p := $policies -}}
{{- if or (eq $p.mode "repair") $p.provenance -}}
{{- $mutated = append $mutated $p -}}
{{- $mutatedNames = append $mutatedNames $p.name -}}
{{- end -}}
{{- end -}}
{{- $mutateNames := include "driftgate.webhookNames" (dict "names" $mutatedNames "suffix" "mutate.driftgate.dev") | fromJsonArray -}}
{{- $mutating := list -}}
{{- range $i, $p := $mutated -}}
{{- $hook := dict "name" (index $mutateNames $i) "admissionReviewVersions" (list "v1") "clientConfig" (include "driftgate.clientConfig" (dict "root" $root "path" (include "driftgate.policyPath" (list "mutate" $p.name))) | fromJson) "rules" (include "driftgate.rules" (dict "policy" $p "allowed" (list "CREATE" "UPDATE") "objectsOnly" true) | fromJsonArray) "namespaceSelector" (include "driftgate.namespaceSelector" (dict "root" $root "policy" $p) | fromJson) "objectSelector" (dict) "matchPolicy" "Equivalent" "reinvocationPolicy" "Never" "sideEffects" "NoneOnDryRun" "timeoutSeconds" $timeout -}}
{{- /* Repair fails closed like enforce; stamping provenance alone fails open. */ -}}
{{- $_ := set $hook "failurePolicy" (ternary (get $failure "repair") "Ignore" (eq $p.mode "repair")) -}}
{{- if not $p.provenance -}}
{{- $conditions := include "driftgate.gitopsConditions" $p | fromJsonArray -}}
{{- if $conditions -}}
{{- $_ := set $hook "matchConditions" $conditions -}}
{{- end -}}
{{- end -}}
{{- $mutating = append $mutating $hook -}}
{{- end -}}
{{- toJson (dict "validating" $validating "mutating" $mutating) -}}
{{- end -}}
