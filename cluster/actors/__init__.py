"""cluster.actors"""
