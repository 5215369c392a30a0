"""The network and FLAME: the SHeaP predictor, its precision, FLAME in torch, temporal clean-up."""
