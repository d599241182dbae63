"""The release's core decisions, free of Prefect: the plan, and what each step concludes."""
