"""cluster.records"""
