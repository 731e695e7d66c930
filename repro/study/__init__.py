"""The study layer: what each 1998 design choice is worth, built on the model and training core of `repro`.

grids.py declares the ablation grids and their protocol; grid.py runs every (variant, seed) of a grid,
resumable (`lenet5 grid`); ablation.py and stats.py turn the runs into ablation tables with intervals and
paired tests; report.py writes the reproduction and ablation tables (`lenet5 report`); figures.py draws every
figure from code and committed results (`lenet5 figures`); screens.py holds the validation screens' rules and
tables (the step sizes of grids.py are checked against its committed rows).
"""
