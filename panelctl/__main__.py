"""python -m panelctl"""

from panelctl.cli import main

main()
