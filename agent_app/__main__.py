from agent_app.cli import main

main()
