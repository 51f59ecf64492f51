"""(commands are added here by the issue that owns them)"""
