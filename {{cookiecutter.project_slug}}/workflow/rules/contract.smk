# How this workflow keeps its contract with where it runs. The mechanism is the template's
# library, workflow/vendor/contract.py and its neighbours (leave them as shipped):
# - the scratch policy comes from a profile; without one the workflow only parses, lints and dry-runs;
# - scratch("<command>") runs a shell rule's command in the job's node-local scratch, and the
#   profile's shadow_route takes shadow: "minimal" jobs there too (docs/rule-kinds.md);
# - before the first job: every rule writing under results/ takes one of these routes, results/
#   gets nothing but FINAL_OUTPUTS, and stale files there are moved to work/stale-results/.
# The onstart: below is the workflow's only one: another would replace it and skip its checks.

CONTRACT = contract.Contract(workflow, config, workflow_file)  # imported in common.smk
scratch = CONTRACT.scratch


onstart:
    CONTRACT.check_before_jobs(FINAL_OUTPUTS)
