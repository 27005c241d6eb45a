"""The service's contract, shared by the gateway and the workers, and its local commands.

At this root: settings (`config`), the job's schemas, the bytes in Redis (`storage`), RQ job
records (`jobs`), the upload validator (`uploads`), the error and failure vocabularies
(`errors`, `failures`), and the commands that run the service on one machine (`serve_cli`,
`submit_cli`, `redis_cli` with `redis_server`). The HTTP gateway alone is `service.gateway`;
workers import only this root, never the gateway. Nothing here imports torch.
"""
