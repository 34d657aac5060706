"""telephony.sim"""
