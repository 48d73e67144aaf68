module weftbench/gopeer

go 1.19
