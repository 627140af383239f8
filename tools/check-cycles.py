#!/usr/bin/env python3
"""check-cycles OBJDIR [NM]: no two files of agent/ call into each other.

OBJDIR is where the build put the library's objects (its agent/ sub-folder
mirrors the source tree: agent/host/host.c.o). For every object, `nm` gives
the global symbols it defines and those it uses; a file A depends on B when
A uses a symbol B defines. A pair that depends both ways is a cycle: one of
the two should own the shared part, or reach the other through an interface
(a struct of callbacks) it is given. Prints every such pair with the
symbols of each direction and exits 1 when there is one.
"""
import glob
import itertools
import os
import subprocess
import sys

DEFINED = set('TDBRVWGSC')


def symbols(nm, obj):
	out = subprocess.run([nm, obj], check=True, capture_output=True, text=True).stdout
	defs, uses = set(), set()
	for line in out.splitlines():
		p = line.split()
		if len(p) == 3 and p[1] in DEFINED:
			defs.add(p[2])
		elif len(p) == 2 and p[0] == 'U':
			uses.add(p[1])
	return defs, uses


def main():
	if len(sys.argv) < 2:
		print(__doc__.strip(), file=sys.stderr)
		return 2
	root = os.path.join(sys.argv[1], 'agent')
	nm = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else 'nm'
	objs = sorted(glob.glob(os.path.join(root, '**', '*.o'), recursive=True))
	if not objs:
		print('check-cycles: no objects under %s' % root, file=sys.stderr)
		return 2
	defs, uses, owner = {}, {}, {}
	for o in objs:
		name = 'agent/' + os.path.relpath(o, root)
		name = name[:-len('.o')]
		defs[name], uses[name] = symbols(nm, o)
		for s in defs[name]:
			owner[s] = name
	calls = {}
	for name, used in uses.items():
		calls[name] = {}
		for s in used:
			o = owner.get(s)
			if o is not None and o != name:
				calls[name].setdefault(o, set()).add(s)
	cycles = 0
	for a, b in itertools.combinations(sorted(calls), 2):
		if b in calls[a] and a in calls[b]:
			cycles += 1
			print('cycle: %s <-> %s' % (a, b))
			print('  %s uses %s' % (a, ', '.join(sorted(calls[a][b]))))
			print('  %s uses %s' % (b, ', '.join(sorted(calls[b][a]))))
	print('%d files of agent/, %d cycles' % (len(objs), cycles))
	return 1 if cycles else 0


if __name__ == '__main__':
	sys.exit(main())
