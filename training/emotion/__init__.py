"""training.emotion"""
