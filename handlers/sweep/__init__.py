"""The sweep function: finds what events missed, on a schedule."""
