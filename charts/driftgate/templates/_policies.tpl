{{/*
The policy files and the policies in them, as `driftgate manifests` loads a policy folder
(src/policy/load.rs): every file in name order, several documents a file, the defaults of the
DriftPolicy model filled in. What the ConfigMap holds, what the pod-template hash covers, and
what the webhook configurations and the tamper guard are derived from. The checks here are the
ones a wrong file would otherwise only show as a crash-looping pod; `driftgate check` and the
server check everything.
*/}}

{{/* The policy files, name → text: `policies.files`, else the chart's files/policies. JSON. */}}
{{- define "driftgate.policyFiles" -}}
{{- $files := dict -}}
{{- if .Values.policies.files -}}
{{- $files = .Values.policies.files -}}
{{- else -}}
{{- range $path, $_ := .Files.Glob "files/policies/*.y*ml" -}}
{{- $_ := set $files (base $path) ($.Files.Get $path) -}}
{{- end -}}
{{- end -}}
{{- toJson $files -}}
{{- end -}}

{{/*
Change marker of the pod template over the policy files (rolls the pods when a policy
changes): the first 16 hex digits of SHA-256 over sha256(name) sha256(text) of each file in name
order, as src/install/workload.rs computes it.
*/}}
{{- define "driftgate.policiesHash" -}}
{{- $files := include "driftgate.policyFiles" . | fromJson -}}
{{- $acc := "" -}}
{{- range $name := keys $files | sortAlpha -}}
{{- $acc = print $acc (sha256sum $name) (sha256sum (get $files $name)) -}}
{{- end -}}
{{- sha256sum $acc | trunc 16 -}}
{{- end -}}

{{/*
A list of strings from a policy, or a failure that says which: YAML 1.1, which Helm reads, takes
unquoted y, yes, no, on and off for booleans (driftgate's YAML 1.2 does not). Argument: list
file, policy, field, value. JSON list.
*/}}
{{- define "driftgate.strings" -}}
{{- $value := index . 3 | default list -}}
{{- if not (kindIs "slice" $value) -}}
{{- fail (printf "policies %s: policy %s: %s must be a list" (index . 0) (index . 1) (index . 2)) -}}
{{- end -}}
{{- range $item := $value -}}
{{- if not (kindIs "string" $item) -}}
{{- fail (printf "policies %s: policy %s: %s holds %v, which is not a string: quote it (unquoted y, yes, no, on, off are booleans to Helm)" (index $ 0) (index $ 1) (index $ 2) $item) -}}
{{- end -}}
{{- end -}}
{{- toJson $value -}}
{{- end -}}

{{/*
The policies, in load order, with the model's defaults filled in. JSON list of
{name, file, mode, resources: [{group, kinds, resources, operations}], include, exclude,
serviceAccounts: [{namespace, name ("*": all)}], users, groups, breakGlass, provenance}.
*/}}
{{- define "driftgate.policies" -}}
{{- $files := include "driftgate.policyFiles" . | fromJson -}}
{{- $policies := list -}}
{{- $seen := dict -}}
{{- range $file := keys $files | sortAlpha -}}
{{- $text := get $files $file -}}
{{- if not (kindIs "string" $text) -}}
{{- fail (printf "policies.files.%s: give the file's text (a YAML string), not %s" $file (kindOf $text)) -}}
{{- end -}}
{{- range $doc := regexSplit "(?m)^(---([ \t].*)?|\\.\\.\\.)[ \t\r]*$" $text -1 -}}
{{- $p := fromYaml $doc -}}
{{- if hasKey $p "Error" -}}
{{- fail (printf "policies %s: %s" $file $p.Error) -}}
{{- end -}}
{{- if $p -}}
{{- if or (ne (toString $p.apiVersion) "driftgate.dev/v1alpha1") (ne (toString $p.kind) "DriftPolicy") -}}
{{- fail (printf "policies %s: a document of apiVersion %v and kind %v (expected driftgate.dev/v1alpha1 DriftPolicy)" $file $p.apiVersion $p.kind) -}}
{{- end -}}
{{- $name := toString (dig "metadata" "name" "" $p) -}}
{{- if not (trim $name) -}}
{{- fail (printf "policies %s: a DriftPolicy without metadata.name" $file) -}}
{{- end -}}
{{- if hasKey $seen $name -}}
{{- fail (printf "policies %s: policy name %q is already used in %s" $file $name (get $seen $name)) -}}
{{- end -}}
{{- $_ := set $seen $name $file -}}
{{- $spec := $p.spec | default dict -}}
{{- $mode := $spec.mode | default "enforce" -}}
{{- if not (has $mode (list "enforce" "warn" "audit" "repair")) -}}
{{- fail (printf "policies %s: policy %s: spec.mode %v (expected enforce, warn, audit or repair)" $file $name $mode) -}}
{{- end -}}
{{- $resources := list -}}
{{- range $r := $spec.resources | default list -}}
{{- $group := $r.group | default "" -}}
{{- if not (kindIs "string" $group) -}}
{{- fail (printf "policies %s: policy %s: group %v is not a string: quote it" $file $name $group) -}}
{{- end -}}
{{- $kinds := include "driftgate.strings" (list $file $name "kinds" $r.kinds) | fromJsonArray -}}
{{- $plurals := include "driftgate.strings" (list $file $name "resources" $r.resources) | fromJsonArray -}}
{{- $operations := include "driftgate.strings" (list $file $name "operations" $r.operations) | fromJsonArray -}}
{{- $resources = append $resources (dict "group" $group "kinds" $kinds "resources" $plurals "operations" $operations) -}}
{{- end -}}
{{- if not $resources -}}
{{- fail (printf "policies %s: policy %s: spec.resources must list at least one API group" $file $name) -}}
{{- end -}}
{{- $gitops := $spec.gitops | default dict -}}
{{- $accounts := list -}}
{{- range $sa := include "driftgate.strings" (list $file $name "gitops.serviceAccounts" $gitops.serviceAccounts) | fromJsonArray -}}
{{- $parts := splitList "/" $sa -}}
{{- if or (ne (len $parts) 2) (not (first $parts)) (not (last $parts)) (eq (first $parts) "*") -}}
{{- fail (printf "policies %s: policy %s: service account %q must be written namespace/name or namespace/*" $file $name $sa) -}}
{{- end -}}
{{- $accounts = append $accounts (dict "namespace" (first $parts) "name" (last $parts)) -}}
{{- end -}}
{{- $users := include "driftgate.strings" (list $file $name "gitops.users" $gitops.users) | fromJsonArray -}}
{{- $groups := include "driftgate.strings" (list $file $name "gitops.groups" $gitops.groups) | fromJsonArray -}}
{{- if not (or $accounts $users $groups) -}}
{{- fail (printf "policies %s: policy %s: spec.gitops lists no writer; without one nobody could change the protected resources" $file $name) -}}
{{- end -}}
{{- $breakGlass := list "driftgate:break-glass" -}}
{{- if and (kindIs "map" $spec.breakGlass) (hasKey $spec.breakGlass "groups") -}}
{{- $breakGlass = include "driftgate.strings" (list $file $name "breakGlass.groups" $spec.breakGlass.groups) | fromJsonArray -}}
{{- end -}}
{{- $namespaces := $spec.namespaces | default dict -}}
{{- $policies = append $policies (dict "name" $name "file" $file "mode" $mode "resources" $resources "include" (include "driftgate.strings" (list $file $name "namespaces.include" $namespaces.include) | fromJsonArray) "exclude" (include "driftgate.strings" (list $file $name "namespaces.exclude" $namespaces.exclude) | fromJsonArray) "serviceAccounts" $accounts "users" $users "groups" $groups "breakGlass" $breakGlass "provenance" (eq (toString $spec.provenance) "true")) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not $policies -}}
{{- fail "policies: no DriftPolicy documents found: refusing to install with nothing protected" -}}
{{- end -}}
{{- toJson $policies -}}
{{- end -}}
