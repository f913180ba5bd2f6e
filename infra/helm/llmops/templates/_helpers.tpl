{{/* The image every service runs: never `latest`. */}}
{{- define "llmops.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if eq $tag "latest" -}}
{{- fail "image.tag=latest is refused: name the version a rollout runs" -}}
{{- end -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}

{{- define "llmops.labels" -}}
app.kubernetes.io/name: llmops
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "llmops.kafkaBootstrap" -}}
{{- if .Values.kafka.bootstrapServers -}}
{{- .Values.kafka.bootstrapServers -}}
{{- else -}}
{{- $nodes := list -}}
{{- range $i := until (int .Values.kafka.brokers) -}}
{{- $nodes = append $nodes (printf "%s-kafka-%d.%s-kafka:9092" $.Release.Name $i $.Release.Name) -}}
{{- end -}}
{{- join "," $nodes -}}
{{- end -}}
{{- end -}}

{{- define "llmops.qdrantUrl" -}}
{{- if .Values.qdrant.url -}}
{{- .Values.qdrant.url -}}
{{- else -}}
{{- printf "http://%s-qdrant:6333" .Release.Name -}}
{{- end -}}
{{- end -}}

{{- define "llmops.secretName" -}}
{{- default (printf "%s-secrets" .Release.Name) .Values.existingSecret -}}
{{- end -}}
