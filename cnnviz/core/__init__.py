"""The Qt-free core of cnnviz: the architecture graph, analysis, zoo, data and training."""
