"""training.intent"""
