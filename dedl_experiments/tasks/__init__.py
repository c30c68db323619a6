"""What differs between the two tasks: data, model, loss and metrics; the loop is shared."""
