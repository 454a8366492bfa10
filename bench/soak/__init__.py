"""The fault soak: hours of mixed faults in minutes against the real platform (schedule.py,
run.py), and an oracle (oracle.py) that checks every ticket guarantee from the outside."""
