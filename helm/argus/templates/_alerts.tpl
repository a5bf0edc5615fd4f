{{/*
The alert rules of templates/prometheusrule.yaml, as YAML: (dict "sel" <this release's series>
"pods" <its pods, kube-state-metrics> "api" <its API Deployment, kube-state-metrics> "r"
.Values.prometheusRule). A queue and the worker role that consumes it share a name (processor,
detector): the rules join argus_queue_messages{queue} to the workers'
app_kubernetes_io_component through label_replace; the dead-letter queue (argus.dlq, whose depth
the API exports in the same gauge) has no consumer by design and an alert of its own, so the
queue alerts leave it out. {{`{{ ... }}`}} is Prometheus' templating.
*/}}
{{- define "argus.alertRules" -}}
{{- $s := .sel -}}
{{- $r := .r -}}
{{- $by := "namespace, app_kubernetes_io_instance" -}}
{{- $work := printf "%s,queue!=\"argus.dlq\"" $s -}}
rules:
  - alert: ArgusApiDown
    expr: |-
      (sum by ({{ $by }}) (up{ {{- $s }},app_kubernetes_io_component="api"}) == 0)
      or absent(up{ {{- $s }},app_kubernetes_io_component="api"})
    for: 5m
    labels: {severity: critical}
    annotations:
      summary: No Argus API pod is up
      description: {{ `Prometheus scrapes no API pod of release {{ $labels.app_kubernetes_io_instance }} in {{ $labels.namespace }} (all down, or none left): uploads and status reads fail.` | quote }}
  - alert: ArgusApiNotReady
    expr: |-
      kube_deployment_status_replicas_unavailable{ {{- .api }}} > 0
    for: 10m
    labels: {severity: warning}
    annotations:
      summary: Argus API pods not ready
      description: {{ `{{ $value }} pod(s) of {{ $labels.deployment }} unavailable for 10 minutes: unschedulable, crash-looping, or /readyz failing because the database, the broker or the result backend does not answer (kubectl describe pod; the pod's log says which).` | quote }}
  - alert: ArgusApiErrorRatioHigh
    expr: |-
      sum by ({{ $by }}) (rate(argus_api_http_requests_total{ {{- $s }},status=~"5.."}[5m]))
      / sum by ({{ $by }}) (rate(argus_api_http_requests_total{ {{- $s }}}[5m]))
      > {{ $r.apiErrorRatio }}
    for: 10m
    labels: {severity: warning}
    annotations:
      summary: Argus API answers many 5xx
      description: {{ `{{ $value | humanizePercentage }} of the API's responses in {{ $labels.namespace }} are 5xx.` | quote }}
  - alert: ArgusApiLatencyHigh
    expr: |-
      histogram_quantile(0.99, sum by ({{ $by }}, le) (
        rate(argus_api_http_request_duration_seconds_bucket{ {{- $s }},route!="/api/v1/videos"}[5m])
        or rate(argus_api_http_request_duration_seconds_bucket{ {{- $s }},route="/api/v1/videos",method!="POST"}[5m])
      )) > {{ $r.apiLatencyP99 }}
    for: 10m
    labels: {severity: warning}
    annotations:
      summary: Argus API answers slowly
      description: {{ printf `The API's p99 latency in {{ $labels.namespace }} is {{ $value | humanizeDuration }} (uploads left out), above %v s for 10 minutes: its pods CPU-bound (kubectl top pods; more api.replicas), the database slow, or logins queueing for password hashing.` $r.apiLatencyP99 | quote }}
  - alert: ArgusQueueNotDraining
    expr: |-
      max by ({{ $by }}, queue) (argus_queue_messages{ {{- $work }}}) > 0
      unless on ({{ $by }}, queue)
      label_replace(
        sum by ({{ $by }}, app_kubernetes_io_component) (rate(argus_worker_tasks_total{ {{- $s }}}[{{ $r.backlogFor }}])) > 0,
        "queue", "$1", "app_kubernetes_io_component", "(.+)")
    for: {{ $r.backlogFor }}
    labels: {severity: warning}
    annotations:
      summary: An Argus queue holds work and none of its tasks finish
      description: {{ printf `Queue {{ $labels.queue }} in {{ $labels.namespace }} has held messages for %s while no {{ $labels.queue }} task finished: are its workers stuck, or all busy with tasks that never end?` $r.backlogFor | quote }}
  - alert: ArgusQueueBacklogGrowing
    expr: |-
      max by ({{ $by }}, queue) (argus_queue_messages{ {{- $work }}}) > {{ $r.backlogMinMessages }}
      and on ({{ $by }}, queue)
      max by ({{ $by }}, queue) (deriv(argus_queue_messages{ {{- $work }}}[{{ $r.backlogFor }}])) > 0
    for: {{ $r.backlogFor }}
    labels: {severity: warning}
    annotations:
      summary: An Argus queue keeps growing
      description: {{ `Queue {{ $labels.queue }} in {{ $labels.namespace }} holds {{ $value }} messages and has kept growing: work arrives faster than its workers finish it (autoscaler at maxReplicas? nodes or GPUs to spare?).` | quote }}
  - alert: ArgusQueueWithoutConsumers
    expr: |-
      max by ({{ $by }}, queue) (argus_queue_messages{ {{- $work }}}) > 0
      unless on ({{ $by }}, queue)
      label_replace(
        sum by ({{ $by }}, app_kubernetes_io_component) (argus_worker_broker_connected{ {{- $s }}}) > 0,
        "queue", "$1", "app_kubernetes_io_component", "(.+)")
    for: 15m
    labels: {severity: critical}
    annotations:
      summary: Work is queued and no worker consumes it
      description: {{ `Queue {{ $labels.queue }} in {{ $labels.namespace }} holds messages and no {{ $labels.queue }} pod is ready and consuming it (a worker consumes once its model is loaded): none running (scaled to zero and not scaled up, unschedulable, crash-looping), still loading, or all cut off from RabbitMQ.` | quote }}
  - alert: ArgusDeadLetterQueueNotEmpty
    expr: |-
      max by ({{ $by }}, queue) (argus_queue_messages{ {{- $s }},queue="argus.dlq"}) > 0
    for: {{ $r.deadLetterFor }}
    labels: {severity: warning}
    annotations:
      summary: Messages wait in the Argus dead-letter queue
      description: {{ `{{ $value }} message(s) wait in argus.dlq in {{ $labels.namespace }}: undecodable, an unknown task, bad arguments, or started ARGUS_MAX_STARTS times without finishing (a dead-lettered chunk has failed its video, with the reason). Read their x-argus-reason header (RabbitMQ management UI: queue argus.dlq, Get messages), fix the cause, then purge the queue; it empties no other way.` | quote }}
  - alert: ArgusVideoFailureRatioHigh
    expr: |-
      (
        clamp_min(max by ({{ $by }}) (delta(argus_videos{ {{- $s }},status="failed"}[1h])), 0)
        / (
          clamp_min(max by ({{ $by }}) (delta(argus_videos{ {{- $s }},status="failed"}[1h])), 0)
          + clamp_min(max by ({{ $by }}) (delta(argus_videos{ {{- $s }},status="succeeded"}[1h])), 0)
        )
      ) > {{ $r.videoFailureRatio }}
      and max by ({{ $by }}) (delta(argus_videos{ {{- $s }},status="failed"}[1h])) >= 3
    for: 10m
    labels: {severity: warning}
    annotations:
      summary: Many Argus videos fail
      description: {{ `{{ $value | humanizePercentage }} of the videos that finished in {{ $labels.namespace }} within the hour failed (GET /api/v1/videos/{id} says why for each).` | quote }}
  - alert: ArgusVideosStalled
    expr: |-
      sum by ({{ $by }}) (max by ({{ $by }}, status) (argus_videos{ {{- $s }},status=~"queued|splitting|detecting|merging"})) > 0
      unless on ({{ $by }})
      sum by ({{ $by }}) (rate(argus_worker_tasks_total{ {{- $s }},outcome="succeeded"}[30m])) > 0
    for: 15m
    labels: {severity: warning}
    annotations:
      summary: Argus videos are in progress and no task succeeds
      description: {{ `{{ $value }} video(s) in {{ $labels.namespace }} are queued or in progress, and no worker task has succeeded for 45 minutes.` | quote }}
  - alert: ArgusWorkerBrokerDisconnected
    expr: |-
      argus_worker_broker_connected{ {{- $s }}} == 0
    for: 5m
    labels: {severity: warning}
    annotations:
      summary: An Argus worker is cut off from the broker
      description: {{ `{{ $labels.pod }} has not consumed its queues for 5 minutes (RabbitMQ down or unreachable, credentials): it retries on its own.` | quote }}
  - alert: ArgusPodRestarting
    expr: |-
      increase(kube_pod_container_status_restarts_total{ {{- .pods }}}[30m]) >= {{ $r.podRestarts }}
    labels: {severity: warning}
    annotations:
      summary: An Argus container keeps restarting
      description: {{ `{{ $labels.container }} in {{ $labels.pod }} restarted {{ $value | humanize }} times within 30 minutes (kubectl logs --previous).` | quote }}
  - alert: ArgusContainerOOMKilled
    expr: |-
      max by (namespace, pod, container) (kube_pod_container_status_last_terminated_reason{ {{- .pods }},reason="OOMKilled"}) == 1
      and on (namespace, pod, container)
      increase(kube_pod_container_status_restarts_total{ {{- .pods }}}[30m]) > 0
    labels: {severity: warning}
    annotations:
      summary: An Argus container was OOM-killed
      description: {{ `{{ $labels.container }} in {{ $labels.pod }} ran out of memory within 30 minutes: raise its memory limit (a detector: fewer chunks in hand or smaller batches).` | quote }}
{{- end -}}
