#!/usr/bin/env python3
# Lists modules that import each other (directly or in a ring), per crate:
#   python3 tests/tools/module_cycles.py crates
# Prints nothing when there is none.
import os,re,sys
root=sys.argv[1]
bad=False
for crate in sorted(os.listdir(root)):
    src=os.path.join(root,crate,'src')
    if not os.path.isdir(src): continue
    mods={}
    for dp,_,fs in os.walk(src):
        for f in fs:
            if f.endswith('.rs'):
                p=os.path.join(dp,f); rel=os.path.relpath(p,src)[:-3]
                name=rel.replace('/mod','').replace('/','::')
                mods[name]=open(p).read()
    top=set(n.split('::')[0] for n in mods)
    libname='lib' if 'lib' in mods else 'main'
    # items defined at root (not mod/use)
    rootsrc=mods.get(libname,'')
    rootitems=set(re.findall(r'^\s*(?:pub(?:\([^)]*\))?\s+)?(?:struct|enum|fn|async fn|type|trait|const|static|macro_rules!)\s+(\w+)',rootsrc,re.M))
    edges={n:set() for n in mods}
    for n,s in mods.items():
        s2=re.sub(r'#\[cfg\(test\)\]\s*mod tests\s*\{.*','',s,flags=re.S)
        s2=re.sub(r'//[^\n]*','',s2)
        me=n.split('::')[0]
        for m in re.finditer(r'crate::(\w+)',s2):
            t=m.group(1)
            if t in top and t!=me and t not in ('lib','main'): edges[n].add(t)
            elif t in rootitems and n!=libname: edges[n].add(libname)
        for m in re.finditer(r'use crate::\{([^}]*)\}',s2):
            for t in re.findall(r'\b(\w+)\b',m.group(1)):
                if t in rootitems and n!=libname: edges[n].add(libname)
                elif t in top and t!=me: edges[n].add(t)
        if n==libname:
            for t in re.findall(r'^\s*pub(?:\(crate\))?\s+use\s+(\w+)::',s2,re.M):
                if t in top: edges[n].add(t)
    # normalize to top-level
    E={}
    for n,ts in edges.items():
        E.setdefault(n.split('::')[0],set()).update(t for t in ts if t!=n.split('::')[0])
    found=[(a,b) for a in E for b in E[a] if a<b and a in E.get(b,())]
    if found: print(crate, 'pairs', found); bad=True
    # any cycle: Tarjan
    idx={};low={};st=[];on=set();out=[];c=[0]
    def sc(v):
        idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
        for w in E.get(v,()):
            if w not in idx: sc(w);low[v]=min(low[v],low[w])
            elif w in on: low[v]=min(low[v],idx[w])
        if low[v]==idx[v]:
            comp=[]
            while True:
                w=st.pop();on.discard(w);comp.append(w)
                if w==v: break
            if len(comp)>1: out.append(comp)
    for v in list(E):
        if v not in idx: sc(v)
    if out: print(crate,'cycles',out); bad=True

sys.exit(1 if bad else 0)
