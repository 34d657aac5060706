"""tests.fakes"""
