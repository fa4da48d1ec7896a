from dlkit.cli import command

command()
