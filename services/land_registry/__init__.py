"""The land registry office: appraises transfers and issues certificates."""
