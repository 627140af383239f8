#!/usr/bin/env python3
"""check-exports LIB INCLUDE_DIR [NM]: the functions libpeerback.so exports
are exactly those declared in INCLUDE_DIR/peerback/*.h.

The headers are read as C, not compiled: comments, preprocessor lines and
the bodies of structs, enums and inline functions are dropped, and every
remaining top-level declaration of the form `... name(...)` is a function
the library promises. Each must carry PB_EXTERN (the objects are compiled
with -fvisibility=hidden, so a declaration without it is not exported) and
be defined in the library; every function the library exports (`nm -D
--defined-only`, types T and W) must be declared. Exported data is refused
unless declared too. Prints the differences and exits 1 on any.
"""
import glob
import os
import re
import subprocess
import sys


def strip(text):
	"""The header without comments, preprocessor lines (with their
	continuations) and C++ guards."""
	text = re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)
	text = re.sub(r'#ifdef\s+__cplusplus.*?#endif', ' ', text, flags=re.S)
	out, cont = [], False
	for line in text.split('\n'):
		if cont or line.lstrip().startswith('#'):
			cont = line.rstrip().endswith('\\')
			continue
		# A line comment, after the macros (whose strings hold URIs).
		out.append(re.sub(r'//[^\n]*', ' ', line))
	return '\n'.join(out)


def declarations(text):
	"""Top-level statements: brace-enclosed bodies are dropped, and a body
	right after `)` (an inline function) ends its statement."""
	stmts, cur, depth, inline = [], [], 0, False
	for ch in text:
		if ch == '{':
			if depth == 0 and ''.join(cur).rstrip().endswith(')'):
				inline = True
			depth += 1
			continue
		if ch == '}':
			depth -= 1
			if depth == 0 and inline:
				stmts.append(('inline', ''.join(cur)))
				cur, inline = [], False
			continue
		if depth > 0:
			continue
		if ch == ';':
			stmts.append(('decl', ''.join(cur)))
			cur = []
			continue
		cur.append(ch)
	return stmts


def drop_attributes(s):
	"""s without __attribute__((...)) groups, nested parentheses included."""
	while True:
		i = s.find('__attribute__')
		if i < 0:
			return s
		j = s.index('(', i)
		depth = 0
		for k in range(j, len(s)):
			depth += {'(': 1, ')': -1}.get(s[k], 0)
			if depth == 0:
				break
		s = s[:i] + s[k + 1:]


FUNC = re.compile(r'\b([A-Za-z_]\w*)\s*\(')
KEYWORDS = {'void', 'int', 'char', 'const', 'unsigned', 'signed', 'long', 'short', 'double', 'float',
	    'struct', 'enum', 'union', 'extern', 'sizeof', 'bool'}
VAR = re.compile(r'\bextern\b.*?\b([A-Za-z_]\w*)\s*(\[[^\]]*\])?\s*$', re.S)


def declared(include_dir):
	"""{name: (header, has PB_EXTERN)} for functions, and declared data."""
	funcs, data = {}, {}
	for h in sorted(glob.glob(os.path.join(include_dir, 'peerback', '*.h'))):
		rel = os.path.relpath(h, include_dir)
		with open(h, encoding='utf-8') as f:
			text = strip(f.read())
		for kind, s in declarations(text):
			s = ' '.join(s.split())
			if kind == 'inline' or not s or s.startswith('typedef') or s.startswith('static'):
				continue
			s = drop_attributes(s)
			if '(' in s:
				# The first name called like a function that is
				# neither a keyword nor a macro (PB_DEPRECATED(...)).
				names = [n for n in FUNC.findall(s) if not n.isupper() and n not in KEYWORDS]
				if names:
					funcs[names[0]] = (rel, 'PB_EXTERN' in s.split(names[0])[0])
				continue
			m = VAR.search(s)
			if m:
				data[m.group(1)] = (rel, 'PB_EXTERN' in s)
	return funcs, data


def exported(lib, nm):
	out = subprocess.run([nm, '-D', '--defined-only', lib], check=True, capture_output=True,
			     text=True).stdout
	funcs, data = set(), set()
	for line in out.splitlines():
		p = line.split()
		if len(p) < 3:
			continue
		t, name = p[1], p[2].split('@')[0]
		if t in 'TW':
			funcs.add(name)
		elif t in 'DBRGSVu':
			data.add(name)
	return funcs, data


def main():
	if len(sys.argv) < 3:
		print(__doc__.strip(), file=sys.stderr)
		return 2
	lib, include_dir = sys.argv[1], sys.argv[2]
	nm = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else 'nm'
	funcs, data = declared(include_dir)
	have, have_data = exported(lib, nm)
	# Symbols the linker and the toolchain define in every shared object.
	have -= {'_init', '_fini'}
	have_data -= {'_edata', '_end', '__bss_start'}
	problems = []
	for name, (h, ext) in sorted(funcs.items()):
		if not ext:
			problems.append('declared without PB_EXTERN: %s (%s)' % (name, h))
		if name not in have:
			problems.append('declared but not exported: %s (%s)' % (name, h))
	for name in sorted(have - set(funcs)):
		problems.append('exported but not declared in include/peerback/: %s' % name)
	for name in sorted(have_data - set(data)):
		problems.append('data exported but not declared: %s' % name)
	for p in problems:
		print(p)
	print('%d functions declared, %d exported, %d differences' % (len(funcs), len(have), len(problems)))
	return 1 if problems else 0


if __name__ == '__main__':
	sys.exit(main())
