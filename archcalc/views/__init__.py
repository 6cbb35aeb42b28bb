"""What a person sees of an analysis: report formats, diagrams, explain, solve, diff and the
verification table of ``archcalc run``. Views read analyses; they never compute a rule."""
