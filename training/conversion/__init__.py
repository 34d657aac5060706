"""training.conversion.model"""
