"""cluster.runtime.lifecycle"""
