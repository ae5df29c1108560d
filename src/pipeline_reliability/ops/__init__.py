"""
Operators' visibility: the day/report model (and, in the lead's merge, watch and alerts).
"""
