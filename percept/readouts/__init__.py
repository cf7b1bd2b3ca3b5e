"""Readouts: what is read off one tap before two images are compared."""

from percept.readouts.base import ChannelWeightedReadout, Readout

__all__ = ["ChannelWeightedReadout", "Readout"]
