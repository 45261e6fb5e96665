"""GitHub webhook intake as one unit: the answer to a request (`intake`, used by the view,
`views`, and by koyra/serial_asgi.py, which answers several at once), the workflow that
records deliveries and queues their deploys (`services`), GitHub's signature and payload
formats (`github`, a boundary: no model, no service) and the WebhookDelivery record.

It depends on `deployments.services` (deploy_create, deploy_create_many) to queue deploys;
nothing in `deployments` depends on it.
"""
