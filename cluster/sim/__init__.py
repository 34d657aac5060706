"""cluster.sim"""
