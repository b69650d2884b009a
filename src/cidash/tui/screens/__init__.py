"""The dashboard's tabs (views inside the App's TabbedContent) and its pushed screens and modals."""
