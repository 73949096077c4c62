from tracehive.cli import app

app(prog_name="tracehive")
