"""Answerability: does a retrieved sentence answer the question? Signals, a small logistic model, fitting."""
