import json
def render(results):
    return "```\n" + json.dumps(results, indent=1, default=str)[:20000] + "\n```\n"
