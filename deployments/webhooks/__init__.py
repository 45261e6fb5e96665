"""GitHub webhook intake as one unit: the view (`views`), the workflow that verifies and
records a delivery and queues its deploy (`services`), GitHub's signature and payload
formats (`github`, a boundary: no model, no service) and the WebhookDelivery record.

It depends on `deployments.services.deploy_create` to queue a deploy; nothing in
`deployments` depends on it.
"""
