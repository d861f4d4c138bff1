"""Bringing history into mschat: mschat's JSON exports, ChatGPT exports, llm's logs.db.

``files.open_file`` tells the kind of a file and reads its conversations one at a
time; ``save.save_imported`` stores each as a private session in one transaction.
"""
