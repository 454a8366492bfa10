"""What discovery decides: the TiKVClusters a set of TidbClusters asks for (pure)."""
