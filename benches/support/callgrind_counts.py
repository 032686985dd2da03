"""Instructions and malloc calls per unit between two callgrind profiles of the same program.

Usage: python3 callgrind_counts.py LOW.out HIGH.out UNITS
Prints: instructions allocations (each (high - low) / units).
"""
import re
import subprocess
import sys


def totals(path):
    out = subprocess.run(
        ["callgrind_annotate", "--tree=caller", path],
        capture_output=True, text=True, check=True,
    ).stdout
    lines = out.split("\n")
    instructions = 0
    mallocs = 0
    for i, line in enumerate(lines):
        if "PROGRAM TOTALS" in line:
            instructions = int(line.split()[0].replace(",", ""))
        if re.search(r"\*\s+\S*:malloc \[", line):
            j = i - 1
            while j >= 0 and lines[j].strip() and "<" in lines[j]:
                calls = re.search(r"\(([\d,]+)x\)", lines[j])
                if calls:
                    mallocs += int(calls.group(1).replace(",", ""))
                j -= 1
    return instructions, mallocs


low, high, units = sys.argv[1], sys.argv[2], float(sys.argv[3])
(low_i, low_m), (high_i, high_m) = totals(low), totals(high)
print(f"{(high_i - low_i) / units:.1f} {(high_m - low_m) / units:.2f}")
