"""deployments.gateway.ingress"""
