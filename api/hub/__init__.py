"""The hub's routes (issue 12): enrolment, the signed cabinet protocol, fleet admin."""
