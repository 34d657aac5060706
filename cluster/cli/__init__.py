"""cluster.cli.main"""
