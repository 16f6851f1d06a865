"""K9 reports: daily, overdue, key and person history, as data, CSV and PDF, stored forever."""
